package app

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"time"
)

// API keys look like mck_<public id>_<secret>:
//
//	mck_Ab3dE5gH_q8ZkT1vR0mXn5cWb2LpYh7sJd4FgKe9uVt3NaQ6iMz
//
// "mck_" makes them recognisable (to people and to secret scanners); the public id (8 base62
// characters) is shown in listings as the key's prefix "mck_<public id>" and finds the key (an
// indexed read); the secret is 40 base62 characters (about 238 random bits).
//
// One hashing scheme, used by creation and verification alike: the stored hash is
// hex(HMAC-SHA256(pepper, whole key)), keyed with a server secret from configuration. The keys are
// random and long, so a slow password hash would add nothing but latency on every request; the
// pepper means a leaked database or event stream alone does not even allow checking a guess.
// Verification compares hashes in constant time (hmac.Equal). Events and read models hold the
// hash, never the key, which is shown once, in the answer to its creation.

// APIKeyPrefix starts every API key.
const APIKeyPrefix = "mck_"

const (
	apiKeyPublicLen = 8
	apiKeySecretLen = 40
	// apiKeyLen is the length of a whole key.
	apiKeyLen = len(APIKeyPrefix) + apiKeyPublicLen + 1 + apiKeySecretLen
	base62    = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)

// GenerateAPIKeyPepper returns a new random API key pepper (32 random bytes, hex-encoded: 64
// bytes of text, to keep in a file): the value of IdentityConfig.APIKeyPepper. Keep it secret and
// stable: changing it invalidates every API key.
func GenerateAPIKeyPepper() ([]byte, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("generate API key pepper: %w", err)
	}
	out := make([]byte, hex.EncodedLen(len(b)))
	hex.Encode(out, b)
	return out, nil
}

// ParseAPIKey reports whether key has the form of an API key and returns its public prefix
// ("mck_" and the public id), which finds it. It checks the form only, not that the key exists.
func ParseAPIKey(key string) (prefix string, ok bool) {
	if len(key) != apiKeyLen || !strings.HasPrefix(key, APIKeyPrefix) {
		return "", false
	}
	rest := key[len(APIKeyPrefix):]
	if rest[apiKeyPublicLen] != '_' || !isBase62(rest[:apiKeyPublicLen]) || !isBase62(rest[apiKeyPublicLen+1:]) {
		return "", false
	}
	return key[:len(APIKeyPrefix)+apiKeyPublicLen], true
}

func isBase62(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') {
			return false
		}
	}
	return true
}

// newAPIKey returns a new random key and its prefix.
func newAPIKey() (key, prefix string, err error) {
	public, err := randomBase62(apiKeyPublicLen)
	if err != nil {
		return "", "", err
	}
	secret, err := randomBase62(apiKeySecretLen)
	if err != nil {
		return "", "", err
	}
	prefix = APIKeyPrefix + public
	return prefix + "_" + secret, prefix, nil
}

// randomBase62 returns n uniformly random base62 characters (rejection sampling: bytes of 248 and
// more are dropped, so every character is equally likely).
func randomBase62(n int) (string, error) {
	out := make([]byte, 0, n)
	buf := make([]byte, n+n/2)
	for len(out) < n {
		if _, err := rand.Read(buf); err != nil {
			return "", fmt.Errorf("random key: %w", err)
		}
		for _, b := range buf {
			if b < 248 && len(out) < n {
				out = append(out, base62[b%62])
			}
		}
	}
	return string(out), nil
}

// hashAPIKey returns the stored hash of a key: hex(HMAC-SHA256(pepper, key)).
func hashAPIKey(pepper []byte, key string) string {
	m := hmac.New(sha256.New, pepper)
	m.Write([]byte(key))
	return hex.EncodeToString(m.Sum(nil))
}

// apiKeyHashEqual compares a computed hash with a stored one in constant time.
func apiKeyHashEqual(computed, stored string) bool {
	return hmac.Equal([]byte(computed), []byte(stored))
}

// useThrottle remembers when this process last recorded each key's use, so that a burst of
// requests records one api_key.used event, not one per request, before the read model shows it.
// The decider refuses a use within the interval of the stored one, so several processes record
// at most one per interval too (their appends conflict and the retry decides nothing).
type useThrottle struct {
	interval time.Duration
	mu       sync.Mutex
	last     map[string]time.Time
}

// maxThrottled bounds the remembered keys before old entries are dropped.
const maxThrottled = 4096

func newUseThrottle(interval time.Duration) *useThrottle {
	return &useThrottle{interval: interval, last: map[string]time.Time{}}
}

// due reports whether a use of key at now should be recorded, and if so remembers it.
func (t *useThrottle) due(key string, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if last, ok := t.last[key]; ok && now.Sub(last) < t.interval {
		return false
	}
	if len(t.last) >= maxThrottled {
		for k, at := range t.last {
			if now.Sub(at) >= t.interval {
				delete(t.last, k)
			}
		}
		if len(t.last) >= maxThrottled {
			clear(t.last)
		}
	}
	t.last[key] = now
	return true
}
