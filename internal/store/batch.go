package store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	// maxBatch caps the calls sent in one pipeline.
	maxBatch = 128
	// maxQueued caps the calls waiting for a pipeline. Beyond it Redis is
	// not keeping up, and a new call fails at once.
	maxQueued = 10000
	// maxQueueWait is how long a call may wait for its pipeline. A call
	// that waited longer fails unsent, so that with a hung Redis a request
	// waits at most this plus one read timeout, not one read timeout per
	// pipeline ahead of it.
	maxQueueWait = 3 * time.Second
	// onceAttempts bounds the attempts of a command that must run at most
	// once. Only an error that shows the command did not run leads to
	// another attempt.
	onceAttempts = 3
)

var (
	errQueueFull     = errors.New("too many Redis commands waiting")
	errQueueTimedOut = errors.New("timed out waiting for a Redis pipeline")
)

// batcher sends the hot-path commands of concurrent requests to Redis in
// shared pipelines: one write and one read for many token requests, on
// either side of the connection. At most GOMAXPROCS pipelines are in flight.
// Commands that arrive meanwhile wait for the next one, so batching costs
// no timer and a lone request goes out at once.
type batcher struct {
	rdb         redis.UniversalClient
	maxFlushers int
	maxWait     time.Duration // maxQueueWait, shorter in tests

	mu       sync.Mutex
	queue    []*batchCall
	flushers int // goroutines sending pipelines, at most maxFlushers
}

// batchCall is one caller's commands and the signal that they completed.
type batchCall struct {
	ctx    context.Context
	queued time.Time
	cmds   []redis.Cmder
	done   chan struct{}
}

func newBatcher(rdb redis.UniversalClient) *batcher {
	return &batcher{rdb: rdb, maxFlushers: runtime.GOMAXPROCS(0), maxWait: maxQueueWait}
}

// do sends cmds with other callers' commands and waits for their replies.
// Each command's own error is in the command. The returned error is ctx's
// when the caller stops waiting. Commands not sent by then are dropped,
// and those already sent may still run.
func (b *batcher) do(ctx context.Context, cmds ...redis.Cmder) error {
	call := &batchCall{ctx: ctx, queued: time.Now(), cmds: cmds, done: make(chan struct{})}
	b.mu.Lock()
	if len(b.queue) >= maxQueued {
		b.mu.Unlock()
		return errQueueFull
	}
	b.queue = append(b.queue, call)
	if b.flushers < b.maxFlushers {
		b.flushers++
		go b.flush()
	}
	b.mu.Unlock()
	select {
	case <-call.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// flush sends queued calls until the queue is empty.
func (b *batcher) flush() {
	for {
		// Let goroutines that are ready to run (other token requests
		// about to queue their commands) run first, so that they join
		// this pipeline. With nothing else ready this returns at once.
		runtime.Gosched()
		b.mu.Lock()
		n := min(len(b.queue), maxBatch)
		if n == 0 {
			b.flushers--
			b.mu.Unlock()
			return
		}
		batch := make([]*batchCall, n)
		copy(batch, b.queue)
		rest := copy(b.queue, b.queue[n:])
		clear(b.queue[rest:]) // the calls hold replies; let them go
		b.queue = b.queue[:rest]
		b.mu.Unlock()
		b.send(batch)
	}
}

// send runs one pipeline with the calls that still wait for it. The
// pipeline has a context of its own: one caller giving up must not fail
// the others' commands.
func (b *batcher) send(batch []*batchCall) {
	defer func() {
		if r := recover(); r != nil {
			err := fmt.Errorf("redis pipeline panicked: %v", r)
			for _, call := range batch {
				setErr(call.cmds, err)
			}
		}
		for _, call := range batch {
			close(call.done)
		}
	}()
	pipe := b.rdb.Pipeline()
	var sent []redis.Cmder
	for _, call := range batch {
		if err := call.ctx.Err(); err != nil {
			setErr(call.cmds, err)
			continue
		}
		if time.Since(call.queued) > b.maxWait {
			setErr(call.cmds, errQueueTimedOut)
			continue
		}
		for _, cmd := range call.cmds {
			_ = pipe.Process(context.Background(), cmd)
			sent = append(sent, cmd)
		}
	}
	if len(sent) == 0 {
		return
	}
	_, err := pipe.Exec(context.Background())
	if err == nil {
		return
	}
	// go-redis puts a failed connection setup (WRONGPASS, NOAUTH) on no
	// command. Without this, those commands would read as empty replies.
	for _, cmd := range sent {
		if cmd.Err() != nil {
			return
		}
	}
	setErr(sent, err)
}

func setErr(cmds []redis.Cmder, err error) {
	for _, cmd := range cmds {
		cmd.SetErr(err)
	}
}

// onceCmd is a command that go-redis must not send again after a timeout
// or a broken connection, because it may have run already. A code
// exchange that ran twice would read as a reused code and revoke the
// grant, and a second SET NX would read as a replayed jti.
type onceCmd struct{ *redis.Cmd }

// NoRetry turns off go-redis's retries for the pipeline that carries the
// command.
func (onceCmd) NoRetry() bool { return true }

// runOnce sends the command that build returns through the batcher, never
// resent after a failure that leaves open whether it ran. After an error
// that shows it did not run (see notRun), it sends a new one, up to
// onceAttempts in all.
func (b *batcher) runOnce(ctx context.Context, build func() *redis.Cmd) *redis.Cmd {
	for attempt := 1; ; attempt++ {
		cmd := build()
		if err := b.do(ctx, onceCmd{cmd}); err != nil {
			// The pipeline may still write cmd, so the error goes in a new one.
			failed := redis.NewCmd(ctx)
			failed.SetErr(err)
			return failed
		}
		if attempt == onceAttempts || !notRun(cmd.Err()) {
			return cmd
		}
		select {
		case <-ctx.Done():
			return cmd
		case <-time.After(time.Duration(attempt) * 20 * time.Millisecond):
		}
	}
}

// notRun reports whether err shows that Redis did not run the command.
// Either no connection could be opened, or Redis rejected the command
// before it ran: a cluster slot moving or down, a replica, a server still
// loading, or a failover in progress.
func notRun(err error) bool {
	if err == nil {
		return false
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" {
		return true
	}
	for _, prefix := range []string{"TRYAGAIN", "LOADING", "READONLY", "CLUSTERDOWN", "MASTERDOWN"} {
		if strings.HasPrefix(err.Error(), prefix) {
			return true
		}
	}
	return false
}

// runScript runs a script through the batcher as EVALSHA with runOnce.
// When Redis does not know the script yet (after a restart or SCRIPT
// FLUSH), it loads the script and runs it again: NOSCRIPT means it did
// not run.
func (b *batcher) runScript(ctx context.Context, script *redis.Script, keys []string, args ...any) *redis.Cmd {
	build := func() *redis.Cmd {
		cmdArgs := make([]any, 0, 3+len(keys)+len(args))
		cmdArgs = append(cmdArgs, "evalsha", script.Hash(), len(keys))
		for _, k := range keys {
			cmdArgs = append(cmdArgs, k)
		}
		return redis.NewCmd(ctx, append(cmdArgs, args...)...)
	}
	cmd := b.runOnce(ctx, build)
	if err := cmd.Err(); err == nil || !strings.HasPrefix(err.Error(), "NOSCRIPT") {
		return cmd
	}
	if err := script.Load(ctx, b.rdb).Err(); err != nil {
		failed := redis.NewCmd(ctx)
		failed.SetErr(err)
		return failed
	}
	return b.runOnce(ctx, build)
}
