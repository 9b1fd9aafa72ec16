// Package store keeps smartgate's state in Redis: pending authorization
// requests, authorization codes, refresh token families and revoked grants.
//
// Keys start with a configurable prefix, and every key names its owner in a
// Redis Cluster hash tag, so that each script touches one slot:
//
//	<prefix>authz:{<id>}     pending authorization request (JSON), TTL ~10 min
//	<prefix>code:{<grant>}   authorization code (hash), TTL ~60 s, kept briefly after use
//	<prefix>fam:{<grant>}    refresh token family (hash), TTL = idle timeout
//	<prefix>revoked:{<grant>} marker of a revoked grant, TTL = access token lifetime
//
// A code and the refresh token family it starts share the grant id, so a
// code exchange is one script on one slot and one round trip. The commands
// of the token and introspection endpoints go through a batcher, so that
// concurrent requests share pipelines (see batch.go). Only hashes
// of code and refresh token secrets are stored. Driver errors come back
// wrapped in ErrUnavailable; callers branch on the sentinels below.
package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

var (
	// ErrNotFound: the record does not exist, expired, or the secret is wrong.
	ErrNotFound = errors.New("not found")
	// ErrUnavailable: Redis could not be reached or failed.
	ErrUnavailable = errors.New("state store unavailable")
)

// Store is the Redis-backed state of the gateway. It is safe for
// concurrent use.
type Store struct {
	rdb    redis.UniversalClient
	batch  *batcher // for the commands of the token and introspection endpoints
	prefix string
	now    func() time.Time
}

// New returns a store on a go-redis client (standalone, Sentinel or Cluster).
func New(rdb redis.UniversalClient, prefix string) *Store {
	return &Store{rdb: rdb, batch: newBatcher(rdb), prefix: prefix, now: time.Now}
}

// Client returns the underlying Redis client.
func (s *Store) Client() redis.UniversalClient { return s.rdb }

func (s *Store) key(kind, owner string) string { return s.prefix + kind + ":{" + owner + "}" }

func unavailable(op string, err error) error {
	return fmt.Errorf("%s: %w: %w", op, ErrUnavailable, err)
}

// SavePending stores a pending authorization request for ttl.
func (s *Store) SavePending(ctx context.Context, id string, data []byte, ttl time.Duration) error {
	if err := s.rdb.Set(ctx, s.key("authz", id), data, ttl).Err(); err != nil {
		return unavailable("save authorization request", err)
	}
	return nil
}

// UpdatePending replaces a pending request that still exists, keeping its
// expiry. It returns ErrNotFound when the request is gone.
func (s *Store) UpdatePending(ctx context.Context, id string, data []byte) error {
	ok, err := s.rdb.SetArgs(ctx, s.key("authz", id), data, redis.SetArgs{Mode: "XX", KeepTTL: true}).Result()
	if errors.Is(err, redis.Nil) || (err == nil && ok != "OK") {
		return ErrNotFound
	}
	if err != nil {
		return unavailable("update authorization request", err)
	}
	return nil
}

// LoadPending reads a pending request.
func (s *Store) LoadPending(ctx context.Context, id string) ([]byte, error) {
	b, err := s.rdb.Get(ctx, s.key("authz", id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, unavailable("load authorization request", err)
	}
	return b, nil
}

// TakePending reads and deletes a pending request in one step, so that a
// consent decision can be submitted once only.
func (s *Store) TakePending(ctx context.Context, id string) ([]byte, error) {
	b, err := s.rdb.GetDel(ctx, s.key("authz", id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, unavailable("take authorization request", err)
	}
	return b, nil
}

// GrantRevoked reports whether a grant was revoked, for example because
// its code was used twice or its refresh token was reused.
func (s *Store) GrantRevoked(ctx context.Context, grantID string) (bool, error) {
	n, err := s.rdb.Exists(ctx, s.key("revoked", grantID)).Result()
	if err != nil {
		return false, unavailable("check revoked grant", err)
	}
	return n > 0, nil
}

// SaveLaunch stores an EHR launch context under its opaque launch value.
func (s *Store) SaveLaunch(ctx context.Context, id string, data []byte, ttl time.Duration) error {
	if err := s.rdb.Set(ctx, s.key("launch", id), data, ttl).Err(); err != nil {
		return unavailable("save launch context", err)
	}
	return nil
}

// TakeLaunch reads and deletes a launch context: a launch value is valid once.
func (s *Store) TakeLaunch(ctx context.Context, id string) ([]byte, error) {
	b, err := s.rdb.GetDel(ctx, s.key("launch", id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, unavailable("take launch context", err)
	}
	return b, nil
}
