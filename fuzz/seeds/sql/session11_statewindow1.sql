SELECT collect(a) AS w FROM demo WHERE a >= 0 GROUP BY STATEWINDOW(had_changed(true, a))
