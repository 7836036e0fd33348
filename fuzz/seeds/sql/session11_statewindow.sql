SELECT deviceId, count(*) AS n, window_start() AS s FROM demo GROUP BY STATEWINDOW(status = "alarm", status = "ok") OVER (PARTITION BY deviceId)
