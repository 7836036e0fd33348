CREATE STREAM ldemo (					
) WITH (DATASOURCE="ldemo", TYPE="mock", FORMAT="json");