package eventstore_test

import (
	"testing"

	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/eventstore"
	"github.com/metachat/metachat/eventstore/storetest"
)

func TestMemoryConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(*testing.T) domain.EventStore {
		return eventstore.NewMemory(eventstore.MemoryConfig{})
	})
}
