package store

import (
	"context"
	"runtime"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// maxBatch caps the calls sent in one pipeline.
const maxBatch = 128

// batcher sends the hot-path commands of concurrent requests to Redis in
// shared pipelines: one write and one read for many token requests, on
// either side of the connection. At most one pipeline per CPU is in flight;
// commands that arrive meanwhile wait for the next one, so batching costs
// no timer and a lone request goes out at once.
type batcher struct {
	rdb         redis.UniversalClient
	maxFlushers int

	mu       sync.Mutex
	queue    []*batchCall
	flushers int // goroutines sending pipelines, at most maxFlushers
}

// batchCall is one caller's commands and the signal that they completed.
type batchCall struct {
	cmds []redis.Cmder
	done chan struct{}
}

func newBatcher(rdb redis.UniversalClient) *batcher {
	return &batcher{rdb: rdb, maxFlushers: runtime.GOMAXPROCS(0)}
}

// do sends cmds with other callers' commands and waits for their replies.
// Each command's own error is in the command. The returned error is ctx's
// when the caller stops waiting; the commands may still run.
func (b *batcher) do(ctx context.Context, cmds ...redis.Cmder) error {
	call := &batchCall{cmds: cmds, done: make(chan struct{})}
	b.mu.Lock()
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
		b.queue = append(b.queue[:0], b.queue[n:]...)
		b.mu.Unlock()
		b.send(batch)
	}
}

// send runs one pipeline. The pipeline has a context of its own: one
// caller giving up must not fail the others' commands.
func (b *batcher) send(batch []*batchCall) {
	pipe := b.rdb.Pipeline()
	for _, call := range batch {
		for _, cmd := range call.cmds {
			_ = pipe.Process(context.Background(), cmd)
		}
	}
	_, _ = pipe.Exec(context.Background())
	for _, call := range batch {
		close(call.done)
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

// runScript runs a script through the batcher as EVALSHA, never resent
// after a failure, and, when Redis does not know the script yet (after a
// restart or SCRIPT FLUSH), once more as EVAL on its own.
func (b *batcher) runScript(ctx context.Context, script *redis.Script, keys []string, args ...any) *redis.Cmd {
	cmdArgs := make([]any, 0, 3+len(keys)+len(args))
	cmdArgs = append(cmdArgs, "evalsha", script.Hash(), len(keys))
	for _, k := range keys {
		cmdArgs = append(cmdArgs, k)
	}
	cmdArgs = append(cmdArgs, args...)
	cmd := redis.NewCmd(ctx, cmdArgs...)
	if err := b.do(ctx, onceCmd{cmd}); err != nil {
		// The pipeline may still write cmd, so the error goes in a new one.
		failed := redis.NewCmd(ctx)
		failed.SetErr(err)
		return failed
	}
	if err := cmd.Err(); err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") {
		return script.Eval(ctx, b.rdb, keys, args...)
	}
	return cmd
}
