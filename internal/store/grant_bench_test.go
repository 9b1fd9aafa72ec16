package store

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/smartgate/smartgate/internal/testenv"
	"github.com/smartgate/smartgate/internal/token"
)

// benchStore returns a store on the package's redis-server, which the
// first test or benchmark starts.
func benchStore(b *testing.B) *Store {
	b.Helper()
	redisOnce.Do(func() { redisAddr = testenv.StartRedis(b, &services).Addr })
	if redisAddr == "" {
		b.Fatal("redis-server failed to start")
	}
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr})
	b.Cleanup(func() { rdb.Close() })
	return New(rdb, "b:"+token.RandomString(6)+":")
}

// startFamily redeems a fresh code into a rotating refresh family and
// returns the grant id and the hash of its current refresh secret.
func startFamily(b *testing.B, s *Store) (gid, current string) {
	b.Helper()
	ctx := context.Background()
	gid = token.NewGrantID()
	_, codeHash := token.NewHandle(token.CodePrefix, gid)
	if err := s.SaveCode(ctx, gid, codeHash, sampleGrant(), rotating, time.Minute); err != nil {
		b.Fatal(err)
	}
	_, current = token.NewHandle(token.RefreshPrefix, gid)
	g := sampleGrant()
	if _, _, err := s.Redeem(ctx, Redemption{GrantID: gid, SecretHash: codeHash, ClientID: g.ClientID,
		RedirectURI: g.RedirectURI, Challenge: g.CodeChallenge, RefreshHash: current, AccessLifetime: time.Minute}); err != nil {
		b.Fatal(err)
	}
	return gid, current
}

// BenchmarkRefreshRotation runs the rotation script serially: each
// iteration is one round trip to redis-server.
func BenchmarkRefreshRotation(b *testing.B) {
	s := benchStore(b)
	gid, current := startFamily(b, s)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		_, next := token.NewHandle(token.RefreshPrefix, gid)
		_, rotated, err := s.Refresh(ctx, RefreshUse{GrantID: gid, SecretHash: current, ClientID: sampleGrant().ClientID,
			NewHash: next, AccessLifetime: time.Minute})
		if err != nil || !rotated {
			b.Fatalf("Refresh: rotated %v, err %v", rotated, err)
		}
		current = next
	}
}

// BenchmarkRefreshRotationParallel rotates one family per goroutine, so
// that round trips overlap as they do under concurrent requests.
func BenchmarkRefreshRotationParallel(b *testing.B) {
	s := benchStore(b)
	const parallelism = 16
	type family struct{ gid, current string }
	families := make(chan family, parallelism*runtime.GOMAXPROCS(0))
	for range cap(families) {
		gid, current := startFamily(b, s)
		families <- family{gid, current}
	}
	b.ReportAllocs()
	b.SetParallelism(parallelism)
	b.RunParallel(func(pb *testing.PB) {
		f := <-families
		gid, current := f.gid, f.current
		ctx := context.Background()
		for pb.Next() {
			_, next := token.NewHandle(token.RefreshPrefix, gid)
			_, rotated, err := s.Refresh(ctx, RefreshUse{GrantID: gid, SecretHash: current, ClientID: sampleGrant().ClientID,
				NewHash: next, AccessLifetime: time.Minute})
			if err != nil || !rotated {
				b.Errorf("Refresh: rotated %v, err %v", rotated, err)
				return
			}
			current = next
		}
	})
}
