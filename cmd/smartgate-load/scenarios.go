package main

import (
	"context"
	"crypto"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/smartgate/smartgate/internal/token"
)

// Scenario ids, as printed in the result table.
const (
	scenarioRefresh16   = "refresh c=16"
	scenarioRefresh1    = "refresh c=1"
	scenarioRS384       = "client_credentials RS384 c=16"
	scenarioES384       = "client_credentials ES384 c=16"
	scenarioCode16      = "authorization_code+PKCE c=16"
	scenarioIntrospect  = "introspection c=16"
	scenarioCalibration = "calibration GET c=16"
)

// sparesPerWorker is how many extra refresh families each worker holds,
// so that a peer's failed refresh does not end the worker's chain.
const sparesPerWorker = 4

// postForm sends an application/x-www-form-urlencoded POST.
func postForm(ctx context.Context, client *http.Client, target string, form url.Values, user, password string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(form.Encode()))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(url.QueryEscape(user), url.QueryEscape(password))
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	return readBody(resp)
}

// refreshExchanges gives each worker its own refresh families. A worker
// follows the rotated token of its family and moves to a spare family
// when a refresh fails.
func refreshExchanges(tokenURL string, families []string, workers int, extra url.Values) []exchange {
	exchanges := make([]exchange, workers)
	per := len(families) / workers
	for w := range exchanges {
		chain := families[w*per : (w+1)*per]
		exchanges[w] = func(ctx context.Context, client *http.Client) (int, []byte, error) {
			form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {chain[0]}}
			for k, v := range extra {
				form[k] = v
			}
			status, body, err := postForm(ctx, client, tokenURL, form, "", "")
			if err != nil {
				return status, body, err
			}
			var resp struct {
				RefreshToken string `json:"refresh_token"`
			}
			if status == http.StatusOK && json.Unmarshal(body, &resp) == nil && resp.RefreshToken != "" {
				chain[0] = resp.RefreshToken
			} else if len(chain) > 1 {
				chain = chain[1:]
			}
			return status, body, nil
		}
	}
	return exchanges
}

// sharedExchanges hands out prepared request bodies in order to any worker.
func sharedExchanges(workers int, send func(ctx context.Context, client *http.Client, i int) (int, []byte, error), total int) []exchange {
	var next atomic.Int64
	exchanges := make([]exchange, workers)
	for w := range exchanges {
		exchanges[w] = func(ctx context.Context, client *http.Client) (int, []byte, error) {
			i := int(next.Add(1) - 1)
			if i >= total {
				return 0, nil, fmt.Errorf("prepared requests exhausted after %d", total)
			}
			return send(ctx, client, i)
		}
	}
	return exchanges
}

// signAssertions signs n private_key_jwt client assertions (RFC 7523) with
// a fresh jti each, on every available CPU, before the clock starts.
func signAssertions(clientID, audience string, key crypto.Signer, alg jose.SignatureAlgorithm, n int) ([]string, error) {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: key, KeyID: string(alg) + "-load"}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return nil, err
	}
	out := make([]string, n)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	workers := runtime.GOMAXPROCS(0)
	now := time.Now()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				claims := jwt.Claims{Issuer: clientID, Subject: clientID, Audience: jwt.Audience{audience},
					Expiry: jwt.NewNumericDate(now.Add(4 * time.Minute)), IssuedAt: jwt.NewNumericDate(now),
					ID: token.RandomString(16)}
				s, err := jwt.Signed(signer).Claims(claims).Serialize()
				if err != nil {
					select {
					case errs <- err:
					default:
					}
					return
				}
				out[i] = s
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		return nil, err
	default:
		return out, nil
	}
}

func clientCredentialsForm(assertion, scope string) url.Values {
	return url.Values{"grant_type": {"client_credentials"}, "scope": {scope},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {assertion}}
}

// prepareFunc seeds state and signs what a scenario needs before the
// clock starts, for total requests, and returns one exchange per worker.
type prepareFunc func(ctx context.Context, total, workers int) ([]exchange, error)

// refreshPrepare gives each worker its own refresh families from seed,
// with spares, for the public client's refresh grant.
func refreshPrepare(tokenURL string, seed func(context.Context, int) ([]string, error)) prepareFunc {
	return func(ctx context.Context, total, workers int) ([]exchange, error) {
		families, err := seed(ctx, workers*(1+sparesPerWorker))
		if err != nil {
			return nil, err
		}
		return refreshExchanges(tokenURL, families, workers, url.Values{"client_id": {publicClient}}), nil
	}
}

// clientCredentialsPrepare signs one private_key_jwt assertion per request
// for a client_credentials grant.
func clientCredentialsPrepare(tokenURL, clientID string, key crypto.Signer, alg jose.SignatureAlgorithm) prepareFunc {
	return func(ctx context.Context, total, workers int) ([]exchange, error) {
		assertions, err := signAssertions(clientID, tokenURL, key, alg, total)
		if err != nil {
			return nil, err
		}
		return sharedExchanges(workers, func(ctx context.Context, client *http.Client, i int) (int, []byte, error) {
			return postForm(ctx, client, tokenURL, clientCredentialsForm(assertions[i], backendScope), "", "")
		}, total), nil
	}
}

// codePrepare seeds one code per request, to be exchanged with its PKCE verifier.
func codePrepare(tokenURL string, seed func(context.Context, int) ([]seededCode, error)) prepareFunc {
	return func(ctx context.Context, total, workers int) ([]exchange, error) {
		codes, err := seed(ctx, total)
		if err != nil {
			return nil, err
		}
		return sharedExchanges(workers, func(ctx context.Context, client *http.Client, i int) (int, []byte, error) {
			form := url.Values{"grant_type": {"authorization_code"}, "code": {codes[i].code},
				"redirect_uri": {publicRedirect}, "code_verifier": {codes[i].verifier}, "client_id": {publicClient}}
			return postForm(ctx, client, tokenURL, form, "", "")
		}, total), nil
	}
}

// smartgateScenarios returns the scenarios of smartgate with their sizes.
func smartgateScenarios(t *smartgateTarget, sizes map[string]int, warmup int, timeCap time.Duration) []scenario {
	tokenURL := t.url + "/token"
	introspect := func(ctx context.Context, total, workers int) ([]exchange, error) {
		accessTokens, err := t.accessTokens(ctx, workers)
		if err != nil {
			return nil, err
		}
		exchanges := make([]exchange, workers)
		for w := range exchanges {
			form := url.Values{"token": {accessTokens[w]}}
			exchanges[w] = func(ctx context.Context, client *http.Client) (int, []byte, error) {
				status, body, err := postForm(ctx, client, t.url+"/introspect", form, resourceServer, resourceSecret)
				if err == nil && status == http.StatusOK && !strings.Contains(string(body), `"active":true`) {
					return 0, body, fmt.Errorf("introspection returned an inactive token: %s", body)
				}
				return status, body, err
			}
		}
		return exchanges, nil
	}
	mk := func(id string, c int, prepare prepareFunc) scenario {
		return scenario{id: id, concurrency: c, requests: sizes[id], warmup: min(warmup, sizes[id]), timeCap: timeCap,
			prepare: prepare, strict: true}
	}
	return []scenario{
		mk(scenarioRefresh16, 16, refreshPrepare(tokenURL, t.seedFamilies)),
		mk(scenarioRefresh1, 1, refreshPrepare(tokenURL, t.seedFamilies)),
		mk(scenarioRS384, 16, clientCredentialsPrepare(tokenURL, rs384Client, t.rs384, jose.RS384)),
		mk(scenarioES384, 16, clientCredentialsPrepare(tokenURL, es384Client, t.es384, jose.ES384)),
		mk(scenarioCode16, 16, codePrepare(tokenURL, t.seedCodes)),
		mk(scenarioIntrospect, 16, introspect),
	}
}

// accessTokens obtains n access tokens through refresh grants, before the
// clock starts.
func (t *smartgateTarget) accessTokens(ctx context.Context, n int) ([]string, error) {
	families, err := t.seedFamilies(ctx, n)
	if err != nil {
		return nil, err
	}
	client := newHTTPClient(1)
	defer client.CloseIdleConnections()
	out := make([]string, n)
	for i, rt := range families {
		status, body, err := postForm(ctx, client, t.url+"/token",
			url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {publicClient}}, "", "")
		if err != nil {
			return nil, err
		}
		var resp struct {
			AccessToken string `json:"access_token"`
		}
		if status != http.StatusOK || json.Unmarshal(body, &resp) != nil {
			return nil, fmt.Errorf("refresh for an access token: HTTP %d: %s", status, truncate(body, 300))
		}
		out[i] = resp.AccessToken
	}
	return out, nil
}

// calibrationScenario requests the stand-in identity provider's fixed response.
func calibrationScenario(stubURL string, requests, warmup int, timeCap time.Duration) scenario {
	return scenario{id: scenarioCalibration, concurrency: 16, requests: requests, warmup: warmup, timeCap: timeCap, strict: true,
		prepare: func(ctx context.Context, total, workers int) ([]exchange, error) {
			exchanges := make([]exchange, workers)
			for w := range exchanges {
				exchanges[w] = func(ctx context.Context, client *http.Client) (int, []byte, error) {
					req, err := http.NewRequestWithContext(ctx, http.MethodGet, stubURL+"/calibrate", nil)
					if err != nil {
						return 0, nil, err
					}
					resp, err := client.Do(req)
					if err != nil {
						return 0, nil, err
					}
					return readBody(resp)
				}
			}
			return exchanges, nil
		}}
}

// p384VerifyCost measures what one ES384 client assertion costs to parse
// and verify with go-jose on this CPU: the median of three rounds of 200
// verifications. It is the floor of a client_credentials grant with ES384.
func p384VerifyCost(key crypto.Signer) (time.Duration, error) {
	assertions, err := signAssertions(es384Client, "https://load.invalid/token", key, jose.ES384, 1)
	if err != nil {
		return 0, err
	}
	const perRound = 200
	rounds := make([]float64, 3)
	for i := range rounds {
		start := time.Now()
		for range perRound {
			jws, err := jose.ParseSigned(assertions[0], []jose.SignatureAlgorithm{jose.ES384})
			if err != nil {
				return 0, err
			}
			if _, err := jws.Verify(key.Public()); err != nil {
				return 0, err
			}
		}
		rounds[i] = float64(time.Since(start) / perRound)
	}
	return time.Duration(median(rounds)), nil
}
