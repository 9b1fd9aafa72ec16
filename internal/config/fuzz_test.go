package config

import (
	"errors"
	"testing"
)

// FuzzLoad feeds arbitrary bytes to the configuration loader: it must
// never panic, and every failure is an *Error listing at least one problem.
func FuzzLoad(f *testing.F) {
	f.Add([]byte("server:\n  listen: 127.0.0.1:8080\n"))
	f.Add([]byte("clients:\n  - client_id: a\n    type: public\n    redirect_uris: [x]\n"))
	f.Add([]byte("server: [\n"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("server:\n  public_url: ${NOPE}\n  cookie_secret: $${literal}\n"))
	f.Add([]byte("tokens:\n  access_token_lifetime: -5h\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Load("fuzz.yaml", data)
		if err == nil {
			if cfg == nil {
				t.Fatal("no error and no configuration")
			}
			return
		}
		var e *Error
		if !errors.As(err, &e) || len(e.Problems) == 0 {
			t.Fatalf("error %v is not an *Error with problems", err)
		}
	})
}
