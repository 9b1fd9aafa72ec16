package clientauth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
)

const (
	// maxJWKSSize is the maximum size of a JWK Set response body.
	maxJWKSSize = 64 << 10

	// minRefetchInterval is the minimum time between two refetches of one
	// jwks_uri for an unknown kid, and between retries after a failed fetch. It keeps a flood of
	// assertions with made-up kids from turning into a flood of requests
	// to the client's server.
	minRefetchInterval = 10 * time.Second

	// defaultCacheLifetime applies when the response has no Cache-Control
	// header, or one without max-age, no-cache or no-store.
	defaultCacheLifetime = 5 * time.Minute

	// maxCacheLifetime caps max-age, so that a key the client removes
	// stops working within a day.
	maxCacheLifetime = 24 * time.Hour
)

// errRefetchThrottled reports that a refetch for an unknown kid was not
// made because the previous one was less than minRefetchInterval ago.
var errRefetchThrottled = errors.New("jwks refetch throttled")

// jwksCache holds, per jwks_uri, the last JWK Set fetched successfully and
// the fetch in progress. Its zero value is ready to use. Entries are never
// removed, which is fine while the URIs come from registrations.
type jwksCache struct {
	mu      sync.Mutex
	entries map[string]*jwksEntry
}

type jwksEntry struct {
	set         *jose.JSONWebKeySet // last good set; nil before the first success
	expires     time.Time           // set may be reused before this time
	lastAttempt time.Time           // start of the latest fetch
	lastRefetch time.Time           // start of the latest refetch for an unknown kid
	lastErr     error               // error of the latest fetch; nil after a success
	call        *jwksCall           // fetch in progress, or nil
}

// jwksCall is one fetch that concurrent verifications wait for together.
type jwksCall struct {
	done    chan struct{} // closed when set and err are final
	set     *jose.JSONWebKeySet
	err     error
	waiters int // verifications waiting for this fetch, for tests
}

// keySet returns the JWK Set at uri. It returns the cached set while its
// lifetime lasts, unless refetch is true. Otherwise it fetches the set or
// joins a fetch already in progress. fetched reports that the set comes
// from a fetch made for this call, so that the caller does not ask for a
// refetch again.
//
// A refetch is refused with errRefetchThrottled, and a retry after a
// failed fetch returns that failure, until minRefetchInterval has passed
// since the previous attempt. A failed fetch leaves the last good set in
// the cache, to be reused while its lifetime lasts.
func (v *Verifier) keySet(ctx context.Context, uri string, refetch bool) (set *jose.JSONWebKeySet, fetched bool, err error) {
	c := &v.jwks
	c.mu.Lock()
	if c.entries == nil {
		c.entries = make(map[string]*jwksEntry)
	}
	e := c.entries[uri]
	if e == nil {
		e = &jwksEntry{}
		c.entries[uri] = e
	}

	call := e.call
	if call == nil {
		now := v.clock()
		recent := !e.lastAttempt.IsZero() && now.Sub(e.lastAttempt) < minRefetchInterval
		// A client that rotates its key signs with the new kid at once, so
		// the first refetch after a regular fetch is allowed; only repeated
		// refetches for unknown kids are spaced out.
		recentRefetch := !e.lastRefetch.IsZero() && now.Sub(e.lastRefetch) < minRefetchInterval
		switch {
		case !refetch && e.set != nil && now.Before(e.expires):
			set := e.set
			c.mu.Unlock()
			return set, false, nil
		case recentRefetch && refetch:
			c.mu.Unlock()
			return nil, false, errRefetchThrottled
		case recent && e.lastErr != nil:
			err := e.lastErr
			c.mu.Unlock()
			return nil, false, fmt.Errorf("%w (not retried until %s after the failed attempt)", err, minRefetchInterval)
		}
		call = &jwksCall{done: make(chan struct{})}
		e.call = call
		e.lastAttempt = now
		if refetch {
			e.lastRefetch = now
		}
		// The fetch runs on its own goroutine, detached from the
		// cancellation of ctx, because other verifications may join it.
		go v.runFetch(context.WithoutCancel(ctx), uri, e, call)
	}
	call.waiters++
	c.mu.Unlock()

	select {
	case <-call.done:
		return call.set, true, call.err
	case <-ctx.Done():
		return nil, true, ctx.Err()
	}
}

// runFetch performs call and stores its result in e.
func (v *Verifier) runFetch(ctx context.Context, uri string, e *jwksEntry, call *jwksCall) {
	set, lifetime, err := v.fetchJWKS(ctx, uri)

	v.jwks.mu.Lock()
	if err == nil {
		e.set = set
		e.expires = v.clock().Add(lifetime)
	}
	e.lastErr = err
	e.call = nil
	call.set, call.err = set, err
	v.jwks.mu.Unlock()
	close(call.done)
}

// waiters returns the number of verifications waiting for the fetch of
// uri in progress, or zero when none is in progress.
func (c *jwksCache) waiters(uri string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.entries[uri]; e != nil && e.call != nil {
		return e.call.waiters
	}
	return 0
}

// fetchJWKS fetches and parses the JWK Set at uri and returns it with the
// time for which it may be reused.
func (v *Verifier) fetchJWKS(ctx context.Context, uri string) (*jose.JSONWebKeySet, time.Duration, error) {
	timeout := v.fetchTimeout
	if timeout <= 0 {
		timeout = DefaultFetchTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Accept", "application/json")
	client := v.httpClient
	if client == nil {
		client = newHTTPClient()
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()

	if resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("unexpected status %s", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSSize+1))
	if err != nil {
		return nil, 0, fmt.Errorf("read response: %w", err)
	}
	if len(body) > maxJWKSSize {
		return nil, 0, fmt.Errorf("response is larger than %d bytes", maxJWKSSize)
	}
	set, err := parseKeySet(body, false)
	if err != nil {
		return nil, 0, err
	}
	return set, cacheLifetime(resp.Header), nil
}

// cacheLifetime returns how long a response may be reused according to its
// Cache-Control header: zero for no-store or no-cache, max-age capped at
// maxCacheLifetime, and defaultCacheLifetime when neither is given. Of
// several max-age directives the first counts. An invalid max-age means
// zero, because RFC 9111 section 4.2.1 encourages caches to treat such a
// response as stale. The Expires and Age headers are not read.
func cacheLifetime(h http.Header) time.Duration {
	lifetime := defaultCacheLifetime
	seenMaxAge := false
	for _, field := range h.Values("Cache-Control") {
		for directive := range strings.SplitSeq(field, ",") {
			name, arg, _ := strings.Cut(strings.TrimSpace(directive), "=")
			switch strings.ToLower(strings.TrimSpace(name)) {
			case "no-store", "no-cache":
				return 0
			case "max-age":
				if !seenMaxAge {
					lifetime = parseMaxAge(strings.Trim(strings.TrimSpace(arg), `"`))
					seenMaxAge = true
				}
			}
		}
	}
	return lifetime
}

// parseMaxAge parses a max-age value in seconds and caps it at
// maxCacheLifetime. It returns zero for an invalid value.
func parseMaxAge(s string) time.Duration {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0
	}
	seconds, err := strconv.ParseInt(s, 10, 64)
	if err != nil || seconds > int64(maxCacheLifetime/time.Second) {
		// Only a value too large for int64 fails here: it is all digits.
		return maxCacheLifetime
	}
	return time.Duration(seconds) * time.Second
}
