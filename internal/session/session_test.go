package session

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

func TestSessionCookie(t *testing.T) {
	for _, secure := range []bool{false, true} {
		mr := miniredis.RunT(t)
		rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
		s := NewRedisStore(rdb, "t:", []byte("0123456789abcdef0123456789abcdef"), secure, 10*time.Minute)
		name := CookieName(secure)
		r := httptest.NewRequest(http.MethodGet, "https://gw.example.org/authorize", nil)
		w := httptest.NewRecorder()
		b, err := s.Load(r, name)
		if err != nil {
			t.Fatal(err)
		}
		b.AddPending("req-1")
		if err := b.Save(r, w); err != nil {
			t.Fatal(err)
		}
		cookies := w.Result().Cookies()
		if len(cookies) != 1 {
			t.Fatalf("secure=%v: %d cookies, want 1", secure, len(cookies))
		}
		c := cookies[0]
		wantName := "smartgate"
		if secure {
			wantName = "__Host-smartgate"
		}
		if c.Name != wantName || c.Secure != secure || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode ||
			c.Path != "/" || c.Domain != "" {
			t.Errorf("secure=%v: cookie %+v, want %s, Secure=%v, HttpOnly, SameSite=Lax, Path=/, no Domain",
				secure, c, wantName, secure)
		}

		// The cookie holds only a signed id: the values stay in Redis, and a
		// tampered cookie gives an empty session.
		r2 := httptest.NewRequest(http.MethodGet, "https://gw.example.org/consent", nil)
		r2.AddCookie(c)
		b2, err := s.Load(r2, name)
		if err != nil || !b2.HasPending("req-1") {
			t.Errorf("secure=%v: the session did not come back from its cookie (err %v)", secure, err)
		}
		forged := *c
		forged.Value = c.Value[:len(c.Value)-2] + "xx"
		r3 := httptest.NewRequest(http.MethodGet, "https://gw.example.org/consent", nil)
		r3.AddCookie(&forged)
		if b3, err := s.Load(r3, name); err != nil || b3.HasPending("req-1") {
			t.Errorf("secure=%v: a tampered cookie loaded the session", secure)
		}
	}
}
