package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
)

func TestRequestIDOnEveryRecord(t *testing.T) {
	var buf bytes.Buffer
	log := New("json", "debug", &buf)
	ctx := WithRequestID(context.Background(), "req-42")
	log.InfoContext(ctx, "with context")
	log.InfoContext(ctx, "explicit id", "request_id", "req-42")
	log.With("component", "x").WarnContext(ctx, "derived logger")
	log.Info("no context")

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d records, want 4:\n%s", len(lines), buf.String())
	}
	for i, line := range lines[:3] {
		if n := strings.Count(line, `"request_id"`); n != 1 {
			t.Errorf("record %d carries request_id %d times, want once: %s", i, n, line)
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil || rec["request_id"] != "req-42" {
			t.Errorf("record %d: request_id = %v (%v)", i, rec["request_id"], err)
		}
	}
	if strings.Contains(lines[3], "request_id") {
		t.Errorf("a record without a request context got an id: %s", lines[3])
	}
}

func TestLevelAndFormat(t *testing.T) {
	var buf bytes.Buffer
	log := New("text", "warn", &buf)
	log.Info("hidden")
	log.Warn("shown")
	out := buf.String()
	if strings.Contains(out, "hidden") || !strings.Contains(out, "level=WARN msg=shown") {
		t.Errorf("text at warn level: %q", out)
	}
}
