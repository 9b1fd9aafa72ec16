package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// A user's grants are indexed under the user's subject, so that the
// patient's /apps page can list and revoke them:
//
//	<prefix>user:{<subject>}:consents   hash: client id -> consent record (JSON)
//	<prefix>user:{<subject>}:families   set of grant ids with a refresh token family
//
// The consents hash lives as long as its longest record. The families set
// is pruned of ended families whenever it is read or added to.

func (s *Store) userKey(subject, what string) string {
	return s.prefix + "user:{" + subject + "}:" + what
}

// extendScript sets a hash field and makes the key live at least ttl.
// KEYS: the hash. ARGV: field, value, ttl (ms).
var extendScript = redis.NewScript(`
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local ttl = tonumber(ARGV[3])
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
return 1
`)

// SaveConsent stores the consent record of a user for a client, kept at
// least ttl.
func (s *Store) SaveConsent(ctx context.Context, subject, clientID string, record []byte, ttl time.Duration) error {
	err := extendScript.Run(ctx, s.rdb, []string{s.userKey(subject, "consents")}, clientID, record, ttl.Milliseconds()).Err()
	if err != nil {
		return unavailable("save consent", err)
	}
	return nil
}

// Consent returns the consent record of a user for a client.
func (s *Store) Consent(ctx context.Context, subject, clientID string) ([]byte, error) {
	b, err := s.rdb.HGet(ctx, s.userKey(subject, "consents"), clientID).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, unavailable("load consent", err)
	}
	return b, nil
}

// Consents returns every consent record of a user, by client id.
func (s *Store) Consents(ctx context.Context, subject string) (map[string][]byte, error) {
	m, err := s.rdb.HGetAll(ctx, s.userKey(subject, "consents")).Result()
	if err != nil {
		return nil, unavailable("list consents", err)
	}
	out := make(map[string][]byte, len(m))
	for k, v := range m {
		out[k] = []byte(v)
	}
	return out, nil
}

// AddFamily indexes a grant whose refresh token family belongs to the
// user. The index has no expiry, because every refresh extends a family
// without touching the index; instead, ended families are pruned here and
// whenever the index is read, so it holds about as many ids as live families.
func (s *Store) AddFamily(ctx context.Context, subject, grantID string) error {
	if _, err := s.Families(ctx, subject); err != nil {
		return err
	}
	if err := s.rdb.SAdd(ctx, s.userKey(subject, "families"), grantID).Err(); err != nil {
		return unavailable("index refresh family", err)
	}
	return nil
}

// Family describes a live refresh token family.
type Family struct {
	GrantID  string
	ClientID string
	Scope    string
	Patient  string
	Created  time.Time
	// Expires is when the family ends unless a refresh extends it.
	Expires time.Time
}

// Families lists the user's live refresh token families and prunes the
// index of those that ended.
func (s *Store) Families(ctx context.Context, subject string) ([]Family, error) {
	key := s.userKey(subject, "families")
	ids, err := s.rdb.SMembers(ctx, key).Result()
	if err != nil {
		return nil, unavailable("list refresh families", err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	pipe := s.rdb.Pipeline()
	fields := make([]*redis.SliceCmd, len(ids))
	ttls := make([]*redis.DurationCmd, len(ids))
	for i, id := range ids {
		fields[i] = pipe.HMGet(ctx, s.key("fam", id), "cid", "scope", "pat", "created")
		ttls[i] = pipe.PTTL(ctx, s.key("fam", id))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, unavailable("read refresh families", err)
	}
	now := s.now()
	var out []Family
	var dead []any
	for i, id := range ids {
		v := fields[i].Val()
		if len(v) != 4 || v[0] == nil {
			dead = append(dead, id)
			continue
		}
		created, _ := strconv.ParseInt(fmt.Sprint(v[3]), 10, 64)
		out = append(out, Family{GrantID: id, ClientID: fmt.Sprint(v[0]), Scope: fmt.Sprint(v[1]),
			Patient: fmt.Sprint(v[2]), Created: time.UnixMilli(created), Expires: now.Add(ttls[i].Val())})
	}
	if len(dead) > 0 {
		if err := s.rdb.SRem(ctx, key, dead...).Err(); err != nil {
			return nil, unavailable("prune refresh families", err)
		}
	}
	return out, nil
}

// RevokeClient ends everything a user granted a client: its refresh token
// families (whose grants are marked revoked for accessLifetime, so their
// access tokens stop passing introspection) and its consent record. Keys
// of different grants live in different Cluster slots, so this is a
// sequence of steps, each safe to repeat. It returns how many families
// ended.
func (s *Store) RevokeClient(ctx context.Context, subject, clientID string, accessLifetime time.Duration) (int, error) {
	fams, err := s.Families(ctx, subject)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, f := range fams {
		if f.ClientID != clientID {
			continue
		}
		pipe := s.rdb.TxPipeline()
		pipe.Set(ctx, s.key("revoked", f.GrantID), "1", accessLifetime)
		pipe.Del(ctx, s.key("fam", f.GrantID))
		if _, err := pipe.Exec(ctx); err != nil {
			return n, unavailable("revoke refresh family", err)
		}
		if err := s.rdb.SRem(ctx, s.userKey(subject, "families"), f.GrantID).Err(); err != nil {
			return n, unavailable("unindex refresh family", err)
		}
		n++
	}
	if err := s.rdb.HDel(ctx, s.userKey(subject, "consents"), clientID).Err(); err != nil {
		return n, unavailable("delete consent", err)
	}
	return n, nil
}
