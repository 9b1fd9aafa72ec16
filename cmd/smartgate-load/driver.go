package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// system is a server under test: the process whose CPU is counted and,
// for smartgate, its Redis.
type system struct {
	name      string
	serverPID int
	redisPID  int           // 0 when the system keeps its state in process
	rdb       *redis.Client // nil when the system keeps its state in process
	// roundTripsURL serves the server's count of Redis round trips, or "".
	roundTripsURL string
}

// exchange sends one request and returns the status and body.
type exchange func(ctx context.Context, client *http.Client) (status int, body []byte, err error)

// scenario is one measured workload on one system.
type scenario struct {
	id          string
	concurrency int
	requests    int
	warmup      int
	timeCap     time.Duration
	prepare     prepareFunc
	// strict marks scenarios whose runs any non-200 response invalidates.
	strict bool
}

// result is one measured run.
type result struct {
	system, scenario string
	ok, sent         int
	elapsed          time.Duration
	statuses         map[int]int
	latencies        []time.Duration
	serverCPU        time.Duration
	redisCPU         time.Duration
	hasRedis         bool // false for systems that keep their state in process
	rss              int64
	redisCalls       map[string]int64 // commands Redis ran, scripts' own commands included
	redisRoundTrips  int64
	firstError       string
	timedOut         bool
}

func (r *result) perSecond() float64 { return float64(r.ok) / r.elapsed.Seconds() }

func (r *result) perGrant(d time.Duration) float64 {
	if r.ok == 0 {
		return 0
	}
	return float64(d.Microseconds()) / float64(r.ok)
}

func (r *result) percentile(p float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	i := int(float64(len(r.latencies)-1) * p)
	return r.latencies[i]
}

// roundTrips returns Redis round trips per grant, or -1 when the system
// does not count them.
func (r *result) roundTrips() float64 {
	if r.redisRoundTrips < 0 {
		return -1
	}
	if r.ok == 0 {
		return 0
	}
	return float64(r.redisRoundTrips) / float64(r.ok)
}

// readCounter fetches a number served as plain text.
func readCounter(ctx context.Context, url string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	_, body, err := readBody(resp)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(string(body), 10, 64)
}

func newHTTPClient(concurrency int) *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: concurrency, MaxConnsPerHost: concurrency,
			DisableCompression: true, IdleConnTimeout: time.Minute},
	}
}

// measure prepares a scenario, runs its warm-up, then runs it with the
// clock and the CPU counters on. Every loop is bounded by the request
// count and by the scenario's time cap.
func measure(ctx context.Context, sys system, sc scenario) (*result, error) {
	exchanges, err := sc.prepare(ctx, sc.warmup+sc.requests, sc.concurrency)
	if err != nil {
		return nil, fmt.Errorf("%s on %s: prepare: %w", sc.id, sys.name, err)
	}
	client := newHTTPClient(sc.concurrency)
	defer client.CloseIdleConnections()
	warm := drive(ctx, client, exchanges, sc.warmup, sc.timeCap)
	if warm.firstError != "" && sc.strict {
		return nil, fmt.Errorf("%s on %s: warm-up: %s", sc.id, sys.name, warm.firstError)
	}

	serverBefore, err := cpuTime(sys.serverPID)
	if err != nil {
		return nil, err
	}
	var redisBefore time.Duration
	var callsBefore map[string]int64
	if sys.redisPID != 0 {
		if redisBefore, err = cpuTime(sys.redisPID); err != nil {
			return nil, err
		}
		if callsBefore, err = commandCalls(ctx, sys.rdb); err != nil {
			return nil, err
		}
	}
	var tripsBefore int64
	if sys.roundTripsURL != "" {
		if tripsBefore, err = readCounter(ctx, sys.roundTripsURL); err != nil {
			return nil, err
		}
	}
	res := drive(ctx, client, exchanges, sc.requests, sc.timeCap)
	if sys.roundTripsURL != "" {
		tripsAfter, err := readCounter(ctx, sys.roundTripsURL)
		if err != nil {
			return nil, err
		}
		res.redisRoundTrips = tripsAfter - tripsBefore
	} else {
		res.redisRoundTrips = -1
	}
	serverAfter, err := cpuTime(sys.serverPID)
	if err != nil {
		return nil, err
	}
	res.system, res.scenario = sys.name, sc.id
	res.serverCPU = serverAfter - serverBefore
	res.rss = rssBytes(sys.serverPID)
	if sys.redisPID != 0 {
		res.hasRedis = true
		redisAfter, err := cpuTime(sys.redisPID)
		if err != nil {
			return nil, err
		}
		res.redisCPU = redisAfter - redisBefore
		callsAfter, err := commandCalls(ctx, sys.rdb)
		if err != nil {
			return nil, err
		}
		res.redisCalls = map[string]int64{}
		for name, n := range callsAfter {
			// The INFO call that read callsBefore is counted in callsAfter.
			if d := n - callsBefore[name]; d > 0 && name != "info" {
				res.redisCalls[name] = d
			}
		}
	}
	return res, nil
}

// drive sends n requests from len(exchanges) workers and stops after
// timeCap even when requests remain.
func drive(ctx context.Context, client *http.Client, exchanges []exchange, n int, timeCap time.Duration) *result {
	ctx, cancel := context.WithTimeout(ctx, timeCap)
	defer cancel()
	var remaining atomic.Int64
	remaining.Store(int64(n))
	res := &result{statuses: map[int]int{}}

	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for _, ex := range exchanges {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, n/len(exchanges)+1)
			statuses := map[int]int{}
			firstError := ""
			for remaining.Add(-1) >= 0 && ctx.Err() == nil {
				t0 := time.Now()
				status, body, err := ex(ctx, client)
				lat = append(lat, time.Since(t0))
				if err != nil {
					status = -1
					body = []byte(err.Error())
				}
				statuses[status]++
				if status != http.StatusOK && firstError == "" {
					firstError = fmt.Sprintf("HTTP %d: %s", status, truncate(body, 300))
				}
			}
			mu.Lock()
			defer mu.Unlock()
			res.latencies = append(res.latencies, lat...)
			for s, c := range statuses {
				res.statuses[s] += c
			}
			if res.firstError == "" {
				res.firstError = firstError
			}
		}()
	}

	wg.Wait()
	res.elapsed = time.Since(start)
	res.timedOut = ctx.Err() != nil && remaining.Load() >= 0
	res.ok = res.statuses[http.StatusOK]
	res.sent = len(res.latencies)
	slices.Sort(res.latencies)
	return res
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}

// readBody reads and closes a response body.
func readBody(resp *http.Response) (int, []byte, error) {
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}
