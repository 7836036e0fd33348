CREATE STREAM demo (
	color STRING,
	size BIGINT,
	ts BIGINT
) WITH (DATASOURCE="demo", TYPE="mock", FORMAT="json", KEY="ts");