package store

import (
	"context"
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/smartgate/smartgate/internal/testenv"
	"github.com/smartgate/smartgate/internal/token"
)

var (
	redisOnce sync.Once
	redisAddr string
	services  testenv.Cleanup
)

func TestMain(m *testing.M) {
	code := m.Run()
	services.Run()
	os.Exit(code)
}

// newStore returns a store on the package's redis-server, with a key
// prefix of its own so that tests do not see each other's keys.
func newStore(t *testing.T) (*Store, *redis.Client) {
	t.Helper()
	redisOnce.Do(func() { redisAddr = testenv.StartRedis(t, &services).Addr })
	if redisAddr == "" {
		t.Fatal("redis-server failed to start (see the first failing test)")
	}
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr})
	t.Cleanup(func() { rdb.Close() })
	return New(rdb, "t:"+token.RandomString(6)+":"), rdb
}

func sampleGrant() Grant {
	return Grant{ClientID: "app", Scope: "launch/patient patient/*.rs offline_access", Subject: "u1", Patient: "p1",
		FHIRUser: "Patient/p1", Name: "Ann", Audience: "https://fhir.example/r4", Nonce: "n", AuthTime: 1700000000,
		RedirectURI: "https://app.example/cb", CodeChallenge: "challenge"}
}

func saveCode(t *testing.T, s *Store, refresh RefreshTerms) (gid, secretHash string) {
	t.Helper()
	gid = token.NewGrantID()
	_, secretHash = token.NewHandle(token.CodePrefix, gid)
	if err := s.SaveCode(context.Background(), gid, secretHash, sampleGrant(), refresh, time.Minute); err != nil {
		t.Fatal(err)
	}
	return gid, secretHash
}

var rotating = RefreshTerms{Issue: true, Rotate: true, GraceWindow: 2 * time.Second, IdleTimeout: time.Hour}

func TestRedeem(t *testing.T) {
	ctx := context.Background()
	s, rdb := newStore(t)
	g := sampleGrant()

	t.Run("returns the grant and starts the family", func(t *testing.T) {
		gid, hash := saveCode(t, s, rotating)
		got, issued, err := s.Redeem(ctx, Redemption{GrantID: gid, SecretHash: hash, ClientID: g.ClientID, RedirectURI: g.RedirectURI, Challenge: g.CodeChallenge, RefreshHash: "rt-hash", AccessLifetime: time.Minute})
		if err != nil || !issued {
			t.Fatalf("Redeem: issued=%v err=%v", issued, err)
		}
		if got.Scope != g.Scope || got.Patient != g.Patient || got.Nonce != g.Nonce || got.AuthTime != g.AuthTime || got.Name != g.Name {
			t.Errorf("grant = %+v, want %+v", got, g)
		}
		ttl := rdb.PTTL(ctx, s.key("fam", gid)).Val()
		if ttl <= 59*time.Minute || ttl > time.Hour {
			t.Errorf("family TTL = %v, want the idle timeout of 1h", ttl)
		}
	})
	t.Run("no family without refresh", func(t *testing.T) {
		gid, hash := saveCode(t, s, RefreshTerms{})
		_, issued, err := s.Redeem(ctx, Redemption{GrantID: gid, SecretHash: hash, ClientID: g.ClientID, RedirectURI: g.RedirectURI, Challenge: g.CodeChallenge, RefreshHash: "rt-hash", AccessLifetime: time.Minute})
		if err != nil || issued {
			t.Fatalf("issued=%v err=%v, want no refresh token", issued, err)
		}
		if n := rdb.Exists(ctx, s.key("fam", gid)).Val(); n != 0 {
			t.Error("a refresh family was created")
		}
	})
	t.Run("wrong secret is not found", func(t *testing.T) {
		gid, _ := saveCode(t, s, rotating)
		_, _, err := s.Redeem(ctx, Redemption{GrantID: gid, SecretHash: token.Hash("guess"), ClientID: g.ClientID, RedirectURI: g.RedirectURI, Challenge: g.CodeChallenge, RefreshHash: "x", AccessLifetime: time.Minute})
		if !errors.Is(err, ErrNotFound) {
			t.Fatalf("err = %v, want ErrNotFound", err)
		}
	})
	for _, field := range []string{"client_id", "redirect_uri", "code_verifier"} {
		t.Run("mismatched "+field+" spends the code", func(t *testing.T) {
			gid, hash := saveCode(t, s, rotating)
			cid, ru, cc := g.ClientID, g.RedirectURI, g.CodeChallenge
			switch field {
			case "client_id":
				cid = "other"
			case "redirect_uri":
				ru = "https://app.example/other"
			default:
				cc = "other"
			}
			_, _, err := s.Redeem(ctx, Redemption{GrantID: gid, SecretHash: hash, ClientID: cid, RedirectURI: ru, Challenge: cc, RefreshHash: "x", AccessLifetime: time.Minute})
			var mm *CodeMismatchError
			if !errors.As(err, &mm) || mm.Field != field {
				t.Fatalf("err = %v, want a mismatch of %s", err, field)
			}
			_, _, err = s.Redeem(ctx, Redemption{GrantID: gid, SecretHash: hash, ClientID: g.ClientID, RedirectURI: g.RedirectURI, Challenge: g.CodeChallenge, RefreshHash: "x", AccessLifetime: time.Minute})
			if !errors.Is(err, ErrCodeReused) {
				t.Fatalf("after a mismatch: err = %v, want ErrCodeReused", err)
			}
		})
	}
	t.Run("second use revokes the grant", func(t *testing.T) {
		gid, hash := saveCode(t, s, rotating)
		if _, _, err := s.Redeem(ctx, Redemption{GrantID: gid, SecretHash: hash, ClientID: g.ClientID, RedirectURI: g.RedirectURI, Challenge: g.CodeChallenge, RefreshHash: "rt-hash", AccessLifetime: time.Minute}); err != nil {
			t.Fatal(err)
		}
		_, _, err := s.Redeem(ctx, Redemption{GrantID: gid, SecretHash: hash, ClientID: g.ClientID, RedirectURI: g.RedirectURI, Challenge: g.CodeChallenge, RefreshHash: "rt-hash2", AccessLifetime: time.Minute})
		if !errors.Is(err, ErrCodeReused) {
			t.Fatalf("err = %v, want ErrCodeReused", err)
		}
		if n := rdb.Exists(ctx, s.key("fam", gid)).Val(); n != 0 {
			t.Error("the refresh family survived the code's reuse")
		}
		if revoked, err := s.GrantRevoked(ctx, gid); err != nil || !revoked {
			t.Errorf("GrantRevoked = %v, %v; want true", revoked, err)
		}
	})
}

// family redeems a fresh code and returns the grant id and the hash of
// the first refresh token secret.
func family(t *testing.T, s *Store, terms RefreshTerms) string {
	t.Helper()
	g := sampleGrant()
	gid, hash := saveCode(t, s, terms)
	if _, _, err := s.Redeem(context.Background(), Redemption{GrantID: gid, SecretHash: hash, ClientID: g.ClientID, RedirectURI: g.RedirectURI, Challenge: g.CodeChallenge, RefreshHash: "h0", AccessLifetime: time.Minute}); err != nil {
		t.Fatal(err)
	}
	return gid
}

func TestRefresh(t *testing.T) {
	ctx := context.Background()
	s, rdb := newStore(t)

	t.Run("rotation and reuse", func(t *testing.T) {
		gid := family(t, s, rotating)
		if _, rotated, err := s.Refresh(ctx, RefreshUse{GrantID: gid, SecretHash: "h0", ClientID: "app", NewHash: "h1", AccessLifetime: time.Minute}); err != nil || !rotated {
			t.Fatalf("first refresh: rotated=%v err=%v", rotated, err)
		}
		if _, _, err := s.Refresh(ctx, RefreshUse{GrantID: gid, SecretHash: "h1", ClientID: "app", NewHash: "h2", AccessLifetime: time.Minute}); err != nil {
			t.Fatalf("refresh with the rotated token: %v", err)
		}
		_, _, err := s.Refresh(ctx, RefreshUse{GrantID: gid, SecretHash: "h0", ClientID: "app", NewHash: "h3", AccessLifetime: time.Minute})
		if !errors.Is(err, ErrRefreshReused) {
			t.Fatalf("reuse of the first token: err = %v, want ErrRefreshReused", err)
		}
		if _, _, err := s.Refresh(ctx, RefreshUse{GrantID: gid, SecretHash: "h2", ClientID: "app", NewHash: "h4", AccessLifetime: time.Minute}); !errors.Is(err, ErrNotFound) {
			t.Errorf("newest token after reuse: err = %v, want ErrNotFound (family revoked)", err)
		}
		if revoked, _ := s.GrantRevoked(ctx, gid); !revoked {
			t.Error("grant not marked revoked after reuse")
		}
	})
	t.Run("grace window allows one retry", func(t *testing.T) {
		gid := family(t, s, rotating)
		if _, _, err := s.Refresh(ctx, RefreshUse{GrantID: gid, SecretHash: "h0", ClientID: "app", NewHash: "h1", AccessLifetime: time.Minute}); err != nil {
			t.Fatal(err)
		}
		if _, rotated, err := s.Refresh(ctx, RefreshUse{GrantID: gid, SecretHash: "h0", ClientID: "app", NewHash: "h2", AccessLifetime: time.Minute}); err != nil || !rotated {
			t.Fatalf("retry inside the grace window: rotated=%v err=%v", rotated, err)
		}
		if _, _, err := s.Refresh(ctx, RefreshUse{GrantID: gid, SecretHash: "h0", ClientID: "app", NewHash: "h3", AccessLifetime: time.Minute}); !errors.Is(err, ErrRefreshReused) {
			t.Fatalf("second retry: err = %v, want ErrRefreshReused", err)
		}
	})
	t.Run("grace window ends", func(t *testing.T) {
		gid := family(t, s, RefreshTerms{Issue: true, Rotate: true, GraceWindow: time.Millisecond, IdleTimeout: time.Hour})
		if _, _, err := s.Refresh(ctx, RefreshUse{GrantID: gid, SecretHash: "h0", ClientID: "app", NewHash: "h1", AccessLifetime: time.Minute}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
		if _, _, err := s.Refresh(ctx, RefreshUse{GrantID: gid, SecretHash: "h0", ClientID: "app", NewHash: "h2", AccessLifetime: time.Minute}); !errors.Is(err, ErrRefreshReused) {
			t.Fatalf("retry after the window: err = %v, want ErrRefreshReused", err)
		}
	})
	t.Run("without rotation the token stays", func(t *testing.T) {
		gid := family(t, s, RefreshTerms{Issue: true, IdleTimeout: time.Hour})
		for i := 0; i < 3; i++ {
			if _, rotated, err := s.Refresh(ctx, RefreshUse{GrantID: gid, SecretHash: "h0", ClientID: "app", NewHash: "hx", AccessLifetime: time.Minute}); err != nil || rotated {
				t.Fatalf("refresh %d: rotated=%v err=%v", i, rotated, err)
			}
		}
	})
	t.Run("another client", func(t *testing.T) {
		gid := family(t, s, rotating)
		if _, _, err := s.Refresh(ctx, RefreshUse{GrantID: gid, SecretHash: "h0", ClientID: "thief", NewHash: "h1", AccessLifetime: time.Minute}); !errors.Is(err, ErrWrongClient) {
			t.Fatalf("err = %v, want ErrWrongClient", err)
		}
		if _, _, err := s.Refresh(ctx, RefreshUse{GrantID: gid, SecretHash: "h0", ClientID: "app", NewHash: "h1", AccessLifetime: time.Minute}); err != nil {
			t.Fatalf("the owner's refresh after a foreign attempt: %v", err)
		}
	})
	t.Run("idle timeout restarts", func(t *testing.T) {
		gid := family(t, s, rotating)
		rdb.PExpire(ctx, s.key("fam", gid), time.Minute)
		if _, _, err := s.Refresh(ctx, RefreshUse{GrantID: gid, SecretHash: "h0", ClientID: "app", NewHash: "h1", AccessLifetime: time.Minute}); err != nil {
			t.Fatal(err)
		}
		if ttl := rdb.PTTL(ctx, s.key("fam", gid)).Val(); ttl < 59*time.Minute {
			t.Errorf("TTL after refresh = %v, want the idle timeout again", ttl)
		}
	})
	t.Run("absolute lifetime caps", func(t *testing.T) {
		terms := rotating
		terms.Expires = time.Now().Add(time.Second)
		gid := family(t, s, terms)
		if ttl := rdb.PTTL(ctx, s.key("fam", gid)).Val(); ttl > time.Second {
			t.Errorf("family TTL = %v, want at most the absolute lifetime", ttl)
		}
	})
}

func TestPendingTakeOnce(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	if err := s.SavePending(ctx, "id", []byte("data"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdatePending(ctx, "id", []byte("more")); err != nil {
		t.Fatal(err)
	}
	if b, err := s.TakePending(ctx, "id"); err != nil || string(b) != "more" {
		t.Fatalf("TakePending = %q, %v", b, err)
	}
	if _, err := s.TakePending(ctx, "id"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second take: err = %v, want ErrNotFound", err)
	}
	if err := s.UpdatePending(ctx, "id", []byte("late")); !errors.Is(err, ErrNotFound) {
		t.Errorf("update after take: err = %v, want ErrNotFound", err)
	}
}

func TestRedisDownIsUnavailable(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer rdb.Close()
	s := New(rdb, "t:")
	if _, err := s.LoadPending(context.Background(), "x"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("err = %v, want ErrUnavailable", err)
	}
	if _, _, err := s.Refresh(context.Background(), RefreshUse{GrantID: "g", SecretHash: "h", ClientID: "c", NewHash: "n", AccessLifetime: time.Minute}); !errors.Is(err, ErrUnavailable) {
		t.Errorf("err = %v, want ErrUnavailable", err)
	}
}

// TestConcurrentRefresh fires 200 refreshes of one token at the same
// moment. Redis runs each script alone, so the outcome is exactly what the
// policy says: one rotation, one retry inside the grace window when there
// is one, and the next use is reuse, which ends the family.
func TestConcurrentRefresh(t *testing.T) {
	const workers = 200
	ctx := context.Background()
	s, rdb := newStore(t)
	cases := []struct {
		name      string
		terms     RefreshTerms
		successes int
		alive     bool
	}{
		{"rotation with grace window", rotating, 2, false},
		{"rotation without grace window", RefreshTerms{Issue: true, Rotate: true, IdleTimeout: time.Hour}, 1, false},
		{"no rotation", RefreshTerms{Issue: true, IdleTimeout: time.Hour}, workers, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			gid := family(t, s, tc.terms)
			var (
				wg     sync.WaitGroup
				start  = make(chan struct{})
				mu     sync.Mutex
				ok     int
				reused int
				other  []error
				hashes = map[string]bool{}
			)
			for i := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					next := token.Hash(token.RandomString(8)) + string(rune('a'+i%26))
					<-start
					_, rotated, err := s.Refresh(ctx, RefreshUse{GrantID: gid, SecretHash: "h0", ClientID: "app",
						NewHash: next, AccessLifetime: time.Minute})
					mu.Lock()
					defer mu.Unlock()
					switch {
					case err == nil:
						ok++
						if rotated {
							hashes[next] = true
						}
					case errors.Is(err, ErrRefreshReused):
						reused++
					case errors.Is(err, ErrNotFound):
					default:
						other = append(other, err)
					}
				}()
			}
			close(start)
			wg.Wait()
			if len(other) > 0 {
				t.Fatalf("unexpected errors: %v", other)
			}
			if ok != tc.successes {
				t.Errorf("%d refreshes succeeded, want %d", ok, tc.successes)
			}
			exists := rdb.Exists(ctx, s.key("fam", gid)).Val() == 1
			if exists != tc.alive {
				t.Errorf("family exists = %v, want %v", exists, tc.alive)
			}
			if !tc.alive && reused != 1 {
				t.Errorf("%d reuse detections, want exactly 1 (it ends the family)", reused)
			}
			if exists {
				cur := rdb.HGet(ctx, s.key("fam", gid), "cur").Val()
				if tc.terms.Rotate && !hashes[cur] {
					t.Errorf("the live token %q is none of the rotated ones", cur)
				}
			}
		})
	}
}
