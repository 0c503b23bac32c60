-- wrk script for bench/intake.py: POST a distinct JSON alert per request, the same alert as
-- its alert_body(n) (channels ["web"]: always available, plans no delivery).
local n = 0
local token = os.getenv("BENCH_TOKEN")
function request()
  n = n + 1
  local body = '{"event":"Gas leak","headline":"Avoid Market St (' .. n .. ')","severity":"Severe","urgency":"Immediate","certainty":"Observed","category":["Safety"],"instruction":"Keep away from Market St until further notice.","areas":[{"description":"Market St","circle":{"lat":51.5072,"lon":-0.1276,"radius_km":0.5}}],"channels":["web"]}'
  return wrk.format("POST", "/v1/alerts", {["Authorization"]="Bearer " .. token, ["Content-Type"]="application/json"}, body)
end
