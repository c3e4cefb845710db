package app

import (
	"sync"

	"github.com/metachat/metachat/projections"
)

// DefaultAPIKeyCacheSize is how many verified API keys an instance remembers.
const DefaultAPIKeyCacheSize = 10000

// apiKeyCache remembers verified API keys, by their keyed hash, with the version of the key's
// aggregate (the stream sequence of its last event) the read model showed when the key was
// verified. A remembered key is used only after one cheap request to the event store confirms
// that the aggregate's version is still that one (Identity.authenticateAPIKey): a revocation is
// an event of the key's aggregate, so from the moment it is stored no instance accepts the key,
// even before its read model has the revocation. What the cache saves is the read-model lookup (a
// Postgres transaction) on every request.
type apiKeyCache struct {
	max int
	mu  sync.Mutex
	m   map[string]projections.APIKeyCredential
}

func newAPIKeyCache(size int) *apiKeyCache {
	return &apiKeyCache{max: size, m: make(map[string]projections.APIKeyCredential)}
}

func (c *apiKeyCache) get(hash string) (projections.APIKeyCredential, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cred, ok := c.m[hash]
	return cred, ok
}

func (c *apiKeyCache) put(hash string, cred projections.APIKeyCredential) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[hash]; !ok && len(c.m) >= c.max {
		for k := range c.m { // drop an arbitrary entry: a miss only costs one lookup
			delete(c.m, k)
			break
		}
	}
	c.m[hash] = cred
}

func (c *apiKeyCache) drop(hash string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, hash)
}
