package store

import (
	"bytes"
	"context"
	"errors"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// pipelineGate is a go-redis hook that records the size of every pipeline
// and holds the first one until release is closed.
type pipelineGate struct {
	entered chan struct{} // closed when the first pipeline reaches the hook
	release chan struct{}

	mu    sync.Mutex
	sizes []int
}

func newPipelineGate() *pipelineGate {
	return &pipelineGate{entered: make(chan struct{}), release: make(chan struct{})}
}

func (g *pipelineGate) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (g *pipelineGate) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (g *pipelineGate) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		g.mu.Lock()
		g.sizes = append(g.sizes, len(cmds))
		first := len(g.sizes) == 1
		g.mu.Unlock()
		if first {
			close(g.entered)
			<-g.release
		}
		return next(ctx, cmds)
	}
}

// hookedBatcher returns a store on the package's Redis and a batcher whose
// client runs hook.
func hookedBatcher(t *testing.T, hook redis.Hook) (*Store, *batcher) {
	t.Helper()
	s, _ := newStore(t)
	// Without the client's identity, opening a connection sends no
	// pipeline of its own through the hooks.
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr, DisableIdentity: true, Protocol: 2})
	t.Cleanup(func() { rdb.Close() })
	rdb.AddHook(hook)
	return s, newBatcher(rdb)
}

// gatedBatcher returns a batcher with one flusher whose pipelines pass
// through a gate.
func gatedBatcher(t *testing.T) (*Store, *batcher, *pipelineGate) {
	t.Helper()
	gate := newPipelineGate()
	s, b := hookedBatcher(t, gate)
	b.maxFlushers = 1
	return s, b, gate
}

func (b *batcher) queued() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.queue)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// runBehindGate runs call(0) and holds its pipeline at the gate while
// call(1) to call(callers) queue. Then it opens the gate and waits for all.
func runBehindGate(t *testing.T, b *batcher, gate *pipelineGate, callers int, call func(i int)) {
	t.Helper()
	var wg sync.WaitGroup
	start := func(i int) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			call(i)
		}()
	}
	start(0)
	<-gate.entered
	for i := 1; i <= callers; i++ {
		start(i)
	}
	waitFor(t, "the callers queue", func() bool { return b.queued() == callers })
	close(gate.release)
	wg.Wait()
}

// TestBatcherJoinsWaitingCalls holds the first pipeline in flight while 20
// more callers queue, and checks that those 20 go out together in the next
// pipeline, each with its own reply.
func TestBatcherJoinsWaitingCalls(t *testing.T) {
	const callers = 20
	ctx := context.Background()
	s, b, gate := gatedBatcher(t)
	key := func(i int) string { return s.prefix + "k" + strconv.Itoa(i) }

	cmds := make([]*redis.StringCmd, callers+1)
	errs := make([]error, callers+1)
	runBehindGate(t, b, gate, callers, func(i int) {
		set := redis.NewStatusCmd(ctx, "set", key(i), "v"+strconv.Itoa(i))
		cmds[i] = redis.NewStringCmd(ctx, "get", key(i))
		errs[i] = b.do(ctx, set, cmds[i])
	})

	for i, cmd := range cmds {
		if errs[i] != nil {
			t.Fatalf("call %d: %v", i, errs[i])
		}
		if got, err := cmd.Result(); err != nil || got != "v"+strconv.Itoa(i) {
			t.Errorf("call %d: GET = %q, %v; want %q", i, got, err, "v"+strconv.Itoa(i))
		}
	}
	if want := []int{2, 2 * callers}; !slices.Equal(gate.sizes, want) {
		t.Errorf("pipeline sizes = %v, want %v", gate.sizes, want)
	}
}

// TestBatcherCallerGivesUp checks that a caller whose context ends stops
// waiting, and that the pipeline still completes for the other callers.
func TestBatcherCallerGivesUp(t *testing.T) {
	s, b, gate := gatedBatcher(t)
	bg := context.Background()
	first := redis.NewStatusCmd(bg, "set", s.prefix+"first", "1")
	firstDone := make(chan error, 1)
	go func() { firstDone <- b.do(bg, first) }()
	<-gate.entered

	ctx, cancel := context.WithCancel(bg)
	gaveUp := make(chan error, 1)
	go func() { gaveUp <- b.do(ctx, redis.NewStatusCmd(bg, "set", s.prefix+"second", "1")) }()
	waitFor(t, "the second caller queues", func() bool { return b.queued() == 1 })
	cancel()
	if err := <-gaveUp; !errors.Is(err, context.Canceled) {
		t.Errorf("caller that gave up: err = %v, want context.Canceled", err)
	}
	close(gate.release)
	if err := <-firstDone; err != nil || first.Err() != nil {
		t.Errorf("first caller: do = %v, command = %v", err, first.Err())
	}
}

// TestBatcherReloadsScript flushes Redis's script cache, as a Redis restart
// does, and checks that the next refresh still works: EVALSHA fails with
// NOSCRIPT and the script is sent again with EVAL.
func TestBatcherReloadsScript(t *testing.T) {
	ctx := context.Background()
	s, rdb := newStore(t)
	gid := family(t, s, rotating)
	if err := rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if _, rotated, err := s.Refresh(ctx, RefreshUse{GrantID: gid, SecretHash: "h0", ClientID: "app", NewHash: "h1",
		AccessLifetime: time.Minute}); err != nil || !rotated {
		t.Fatalf("refresh after SCRIPT FLUSH: rotated=%v err=%v", rotated, err)
	}
	if cur := rdb.HGet(ctx, s.key("fam", gid), "cur").Val(); cur != "h1" {
		t.Errorf("current token hash = %q, want h1", cur)
	}
}

// TestBatcherRedisGone checks that the batched commands report an
// unreachable Redis as ErrUnavailable and leave no flusher or call behind.
func TestBatcherRedisGone(t *testing.T) {
	ctx := context.Background()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer rdb.Close()
	s := New(rdb, "t:")
	if _, err := s.ClaimJTI(ctx, "client", "j1", time.Minute); !errors.Is(err, ErrUnavailable) {
		t.Errorf("ClaimJTI: err = %v, want ErrUnavailable", err)
	}
	if _, err := s.AccessTokenRevoked(ctx, "g", "j1"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("AccessTokenRevoked: err = %v, want ErrUnavailable", err)
	}
	if _, _, err := s.Redeem(ctx, Redemption{GrantID: "g", SecretHash: "h", ClientID: "c"}); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Redeem: err = %v, want ErrUnavailable", err)
	}

	waitFor(t, "the flushers end", func() bool {
		s.batch.mu.Lock()
		defer s.batch.mu.Unlock()
		return s.batch.flushers == 0 && len(s.batch.queue) == 0
	})
}

// startReplyDropper starts a TCP proxy to Redis that drops the reply to
// the first request containing EVALSHA and closes that connection. The
// script then ran, but the client sees a broken connection instead of the
// reply.
func startReplyDropper(t *testing.T, target string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var dropped atomic.Bool
	go func() {
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			server, err := net.Dial("tcp", target)
			if err != nil {
				client.Close()
				return
			}
			t.Cleanup(func() { client.Close(); server.Close() })
			var armed atomic.Bool
			go func() {
				buf := make([]byte, 64<<10)
				for {
					n, err := client.Read(buf)
					if n > 0 && bytes.Contains(bytes.ToLower(buf[:n]), []byte("evalsha")) && dropped.CompareAndSwap(false, true) {
						armed.Store(true)
					}
					if n > 0 {
						server.Write(buf[:n])
					}
					if err != nil {
						server.Close()
						return
					}
				}
			}()
			go func() {
				buf := make([]byte, 64<<10)
				for {
					n, err := server.Read(buf)
					if armed.Load() {
						client.Close()
						server.Close()
						return
					}
					if n > 0 {
						client.Write(buf[:n])
					}
					if err != nil {
						client.Close()
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// TestBatcherDoesNotResend loses the reply to a code exchange that Redis
// ran. go-redis would send the pipeline again, and the second run would
// find the code used and revoke the grant. The exchange must fail as
// unavailable instead and leave the grant as the first run made it.
func TestBatcherDoesNotResend(t *testing.T) {
	ctx := context.Background()
	live, rdb := newStore(t)
	if err := redeemScript.Load(ctx, rdb).Err(); err != nil {
		t.Fatal(err)
	}
	proxied := redis.NewClient(&redis.Options{Addr: startReplyDropper(t, redisAddr), DisableIdentity: true, Protocol: 2})
	t.Cleanup(func() { proxied.Close() })
	s := New(proxied, live.prefix)

	g := sampleGrant()
	gid, hash := saveCode(t, live, rotating)
	_, _, err := s.Redeem(ctx, Redemption{GrantID: gid, SecretHash: hash, ClientID: g.ClientID, RedirectURI: g.RedirectURI,
		Challenge: g.CodeChallenge, RefreshHash: "rt-hash", AccessLifetime: time.Minute})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Redeem with the reply lost: err = %v, want ErrUnavailable", err)
	}
	if n := rdb.Exists(ctx, live.key("revoked", gid)).Val(); n != 0 {
		t.Error("the grant was revoked: the code exchange ran twice")
	}
	if n := rdb.Exists(ctx, live.key("fam", gid)).Val(); n != 1 {
		t.Error("the refresh family the exchange started is gone")
	}
}

// TestBatcherFailedConnectionSetup uses a client whose AUTH fails. go-redis
// puts that error on no command of the pipeline, and the batcher must not
// let the empty replies read as "jti not seen" or "not revoked".
func TestBatcherFailedConnectionSetup(t *testing.T) {
	ctx := context.Background()
	live, rdb := newStore(t)
	if err := rdb.Set(ctx, live.key("revokedjti", "j1"), "1", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	wrong := redis.NewClient(&redis.Options{Addr: redisAddr, Username: "nobody", Password: "wrong", MaxRetries: -1})
	t.Cleanup(func() { wrong.Close() })
	s := New(wrong, live.prefix)

	if ok, err := s.ClaimJTI(ctx, "client", "j1", time.Minute); !errors.Is(err, ErrUnavailable) {
		t.Errorf("ClaimJTI = %v, %v; want ErrUnavailable", ok, err)
	}
	if revoked, err := s.AccessTokenRevoked(ctx, "", "j1"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("AccessTokenRevoked = %v, %v; want ErrUnavailable", revoked, err)
	}
}

// TestBatcherDropsAbandonedCalls checks that a call whose caller gave up,
// or that waited longer than the batcher allows, is never sent.
func TestBatcherDropsAbandonedCalls(t *testing.T) {
	ctx := context.Background()
	s, b, gate := gatedBatcher(t)
	b.maxWait = 50 * time.Millisecond
	firstDone := make(chan error, 1)
	go func() { firstDone <- b.do(ctx, redis.NewStatusCmd(ctx, "set", s.prefix+"first", "1")) }()
	<-gate.entered

	cancelled, cancel := context.WithCancel(ctx)
	gaveUp := redis.NewStatusCmd(ctx, "set", s.prefix+"gave-up", "1")
	gaveUpDone := make(chan error, 1)
	go func() { gaveUpDone <- b.do(cancelled, gaveUp) }()
	stale := redis.NewStatusCmd(ctx, "set", s.prefix+"stale", "1")
	staleDone := make(chan error, 1)
	go func() { staleDone <- b.do(ctx, stale) }()
	waitFor(t, "both callers queue", func() bool { return b.queued() == 2 })
	cancel()
	time.Sleep(2 * b.maxWait)
	close(gate.release)

	if err := <-gaveUpDone; !errors.Is(err, context.Canceled) {
		t.Errorf("caller that gave up: err = %v, want context.Canceled", err)
	}
	if err := <-staleDone; err != nil || !errors.Is(stale.Err(), errQueueTimedOut) {
		t.Errorf("stale call: do = %v, command = %v; want errQueueTimedOut on the command", err, stale.Err())
	}
	<-firstDone
	for _, key := range []string{"gave-up", "stale"} {
		if n := b.rdb.Exists(ctx, s.prefix+key).Val(); n != 0 {
			t.Errorf("the %s call ran", key)
		}
	}
}

// TestBatcherSplitsLongQueue queues more calls than one pipeline takes.
func TestBatcherSplitsLongQueue(t *testing.T) {
	const callers = 2*maxBatch + 10
	ctx := context.Background()
	s, b, gate := gatedBatcher(t)
	cmds := make([]*redis.IntCmd, callers+1)
	runBehindGate(t, b, gate, callers, func(i int) {
		cmds[i] = redis.NewIntCmd(ctx, "incr", s.prefix+"n")
		if err := b.do(ctx, cmds[i]); err != nil {
			t.Errorf("call %d: %v", i, err)
		}
	})

	if want := []int{1, maxBatch, maxBatch, 10}; !slices.Equal(gate.sizes, want) {
		t.Errorf("pipeline sizes = %v, want %v", gate.sizes, want)
	}
	seen := map[int64]bool{}
	for i, cmd := range cmds {
		if cmd.Err() != nil || seen[cmd.Val()] {
			t.Errorf("call %d: INCR = %d, %v; want a distinct count", i, cmd.Val(), cmd.Err())
		}
		seen[cmd.Val()] = true
	}
}

// hookFunc is a go-redis hook that runs fn in place of each pipeline.
type hookFunc func(ctx context.Context, cmds []redis.Cmder, next redis.ProcessPipelineHook) error

func (f hookFunc) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (f hookFunc) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (f hookFunc) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { return f(ctx, cmds, next) }
}

// TestBatcherSurvivesPanic checks that a panic while a pipeline runs fails
// that pipeline's commands and leaves the batcher working.
func TestBatcherSurvivesPanic(t *testing.T) {
	ctx := context.Background()
	var panicked atomic.Bool
	s, b := hookedBatcher(t, hookFunc(func(ctx context.Context, cmds []redis.Cmder, next redis.ProcessPipelineHook) error {
		if panicked.CompareAndSwap(false, true) {
			panic("hook failed")
		}
		return next(ctx, cmds)
	}))

	first := redis.NewStatusCmd(ctx, "set", s.prefix+"k", "1")
	if err := b.do(ctx, first); err != nil || first.Err() == nil || !strings.Contains(first.Err().Error(), "panicked") {
		t.Errorf("command of the panicking pipeline: do = %v, command = %v", err, first.Err())
	}
	second := redis.NewStatusCmd(ctx, "set", s.prefix+"k", "2")
	if err := b.do(ctx, second); err != nil || second.Err() != nil {
		t.Errorf("next command: do = %v, command = %v", err, second.Err())
	}
}

// TestBatcherRetriesWhatDidNotRun fails the first pipeline with LOADING,
// which Redis returns before running a command, and checks that a
// run-once command is sent again and runs once.
func TestBatcherRetriesWhatDidNotRun(t *testing.T) {
	ctx := context.Background()
	var pipelines atomic.Int32
	s, b := hookedBatcher(t, hookFunc(func(ctx context.Context, cmds []redis.Cmder, next redis.ProcessPipelineHook) error {
		if pipelines.Add(1) == 1 {
			return errors.New("LOADING Redis is loading the dataset in memory")
		}
		return next(ctx, cmds)
	}))

	cmd := b.runOnce(ctx, func() *redis.Cmd { return redis.NewCmd(ctx, "incr", s.prefix+"n") })
	if cmd.Err() != nil || cmd.Val() != int64(1) {
		t.Errorf("INCR = %v, %v; want 1", cmd.Val(), cmd.Err())
	}
	if n := pipelines.Load(); n != 2 {
		t.Errorf("%d pipelines, want 2", n)
	}
}
