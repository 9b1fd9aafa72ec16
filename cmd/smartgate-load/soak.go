package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// soakOptions bound a soak run: a fixed request rate for a fixed time.
type soakOptions struct {
	duration time.Duration
	rate     int
	interval time.Duration
	workers  int
}

// validate checks the soak flags before anything starts.
func (o soakOptions) validate() error {
	switch {
	case o.rate < 1:
		return fmt.Errorf("-soak-rate %d: need at least 1 request per second", o.rate)
	case o.workers < 1:
		return fmt.Errorf("-soak-workers %d: need at least 1", o.workers)
	case o.interval <= 0:
		return fmt.Errorf("-soak-interval %s: need a positive duration", o.interval)
	}
	return nil
}

// soakWindow is the tally of one reporting interval.
type soakWindow struct {
	mu        sync.Mutex
	ok, fail  int
	latencies []time.Duration
	firstFail string
}

func (w *soakWindow) record(status int, took time.Duration, err error, body []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err == nil && status == http.StatusOK {
		w.ok++
		w.latencies = append(w.latencies, took)
		return
	}
	w.fail++
	if w.firstFail == "" {
		w.firstFail = fmt.Sprintf("status %d err %v body %s", status, err, truncate(body, 120))
	}
}

// take returns the window's figures and starts a new window.
func (w *soakWindow) take() (ok, fail int, p99 time.Duration, firstFail string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	ok, fail, firstFail = w.ok, w.fail, w.firstFail
	if n := len(w.latencies); n > 0 {
		slices.Sort(w.latencies)
		p99 = w.latencies[min(n-1, n*99/100)]
	}
	w.ok, w.fail, w.latencies, w.firstFail = 0, 0, w.latencies[:0], ""
	return ok, fail, p99, firstFail
}

// runSoak drives refreshes with rotation at a fixed rate for a bounded
// time and prints, every interval, the throughput, errors, p99 latency,
// and the gateway's resident memory and goroutines, so that a leak or a
// slow degradation shows up as a trend.
func runSoak(ctx context.Context, opts soakOptions) error {
	dir, err := os.MkdirTemp("", "smartgate-soak-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var cleanups []func()
	defer func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	}()
	sg, _, _, err := startSmartgate(ctx, dir, &cleanups)
	if err != nil {
		return err
	}
	tokens, err := sg.seedFamilies(ctx, opts.workers)
	if err != nil {
		return err
	}
	fmt.Printf("soak: refresh with rotation at %d/s for %s, %d workers, a row every %s\n",
		opts.rate, opts.duration, opts.workers, opts.interval)
	fmt.Printf("%8s %10s %8s %9s %9s %11s\n", "time", "200/s", "errors", "p99 ms", "RSS MiB", "goroutines")

	ctx, cancel := context.WithTimeout(ctx, opts.duration)
	defer cancel()
	permits := make(chan struct{}, opts.rate) // at most one second of backlog
	go issuePermits(ctx, permits, opts.rate)

	var window soakWindow
	var total, failed atomic.Int64
	client := newHTTPClient(opts.workers)
	tokenURL := sg.url + "/token"
	var wg sync.WaitGroup
	for w := range opts.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rt := tokens[w]
			for {
				select {
				case <-ctx.Done():
					return
				case <-permits:
				}
				start := time.Now()
				status, body, err := postForm(ctx, client, tokenURL, url.Values{"grant_type": {"refresh_token"},
					"refresh_token": {rt}, "client_id": {publicClient}}, "", "")
				if ctx.Err() != nil {
					return // the run ended during the request
				}
				window.record(status, time.Since(start), err, body)
				total.Add(1)
				var resp struct {
					RefreshToken string `json:"refresh_token"`
				}
				if status == http.StatusOK && json.Unmarshal(body, &resp) == nil && resp.RefreshToken != "" {
					rt = resp.RefreshToken
				} else {
					failed.Add(1)
					return // a worker whose family broke stops; the row shows the error
				}
			}
		}()
	}

	ticker := time.NewTicker(opts.interval)
	defer ticker.Stop()
	begin := time.Now()
	lastRow := begin
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-ticker.C:
		}
		ok, fail, p99, firstFail := window.take()
		if done && ok+fail == 0 {
			break // the end fell on a row just printed
		}
		now := time.Now()
		secs := now.Sub(lastRow).Seconds()
		lastRow = now
		goroutines := readGoroutines(sg.controlURL)
		fmt.Printf("%8s %10.0f %8d %9.2f %9.1f %11s\n", time.Since(begin).Round(time.Second), float64(ok)/max(secs, 0.001),
			fail, float64(p99.Microseconds())/1000, float64(rssBytes(sg.proc.pid()))/(1<<20), goroutines)
		if firstFail != "" {
			fmt.Printf("  first failure of the interval: %s\n", firstFail)
		}
	}
	wg.Wait()
	fmt.Printf("soak: %d requests, %d failed\n", total.Load(), failed.Load())
	if failed.Load() > 0 {
		return fmt.Errorf("%d refreshes failed during the soak", failed.Load())
	}
	return nil
}

// issuePermits hands out rate permits per second in slices of 10 ms until
// ctx ends.
func issuePermits(ctx context.Context, permits chan<- struct{}, rate int) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	owed := 0.0
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		owed += float64(rate) / 100
		for ; owed >= 1; owed-- {
			select {
			case permits <- struct{}{}:
			default: // the workers are behind; the backlog is full
			}
		}
	}
}

// readGoroutines returns the gateway process's number of goroutines.
func readGoroutines(controlURL string) string {
	resp, err := http.Get(strings.TrimSuffix(controlURL, "/") + "/goroutines")
	if err != nil {
		return "?"
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 32))
	if _, err := strconv.Atoi(string(b)); err != nil {
		return "?"
	}
	return string(b)
}
