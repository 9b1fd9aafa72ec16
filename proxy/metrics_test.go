package proxy

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/smartgate/smartgate/internal/token"
)

// TestRedisDownIs503 stops Redis under a token request: the response is
// 503 temporarily_unavailable, nothing is issued, and the Redis error
// counter moves.
func TestRedisDownIs503(t *testing.T) {
	tg := newTestGateway(t, nil)
	before := testutil.ToFloat64(tg.metrics.RedisErrors)
	tg.redis.Close()

	rt, _ := token.NewHandle(token.RefreshPrefix, token.NewGrantID())
	resp := tg.serve(formRequest(http.MethodPost, testPublicURL+PathToken, url.Values{
		"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {testPublicClient}}))
	var body map[string]any
	if err := json.Unmarshal([]byte(readBody(t, resp)), &body); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusServiceUnavailable || body["error"] != "temporarily_unavailable" || body["access_token"] != nil {
		t.Errorf("token request with Redis down: %d %v, want 503 temporarily_unavailable", resp.StatusCode, body)
	}
	if got := testutil.ToFloat64(tg.metrics.RedisErrors); got != before+1 {
		t.Errorf("smartgate_redis_errors_total = %v, want %v", got, before+1)
	}

	page := tg.serve(formRequest(http.MethodGet, testPublicURL+PathAuthorize+"?"+smartAuthorizeParams().Encode(), nil))
	if page.StatusCode >= 500 && page.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("authorize with Redis down: %d, want a redirect with temporarily_unavailable or 503", page.StatusCode)
	}
}
