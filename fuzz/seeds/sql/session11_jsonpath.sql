SELECT json_path_query(e, "$.rings[? @.weight > 1].name") AS h, json_path_query_first(e, "$..weight") AS w FROM demo WHERE json_path_exists(e, "$.rings[0:2]")
