package domain

import (
	"hash/maphash"
	"math/bits"
)

// clientIndex is the persistent map from client_message_id to message that a Conversation state
// carries: with returns a new index and never changes the one it is called on, so every state
// built from another shares all of it but the changed path. Evolve stays pure and O(log n) per
// message however long the conversation, and states can be cached and read concurrently.
//
// It is a hash array mapped trie: each level consumes 5 bits of the key's 64-bit hash and keeps
// only the children present (a 32-bit bitmap); keys whose whole hashes are equal share a leaf. The
// hash is seeded per index (maphash), so crafted ids cannot pile up in one leaf. The zero value is
// the empty index.
type clientIndex struct {
	root *indexNode
	seed maphash.Seed
}

// indexNode is one level of the trie: a bitmap of occupied slots and the slots in order.
type indexNode struct {
	bitmap uint32
	slots  []indexSlot
}

// indexSlot is a sub-trie or a leaf.
type indexSlot struct {
	child *indexNode
	leaf  *indexLeaf
}

// indexLeaf holds the entries whose keys have the same hash.
type indexLeaf struct {
	hash    uint64
	entries []indexEntry
}

type indexEntry struct {
	key string
	ref MessageRef
}

const (
	indexBits = 5
	indexMask = 1<<indexBits - 1
)

// get returns the message of key.
func (x clientIndex) get(key string) (MessageRef, bool) {
	if x.root == nil {
		return MessageRef{}, false
	}
	h := maphash.String(x.seed, key)
	n := x.root
	for shift := uint(0); ; shift += indexBits {
		bit := uint32(1) << ((h >> shift) & indexMask)
		if n.bitmap&bit == 0 {
			return MessageRef{}, false
		}
		s := n.slots[bits.OnesCount32(n.bitmap&(bit-1))]
		if s.child != nil {
			n = s.child
			continue
		}
		if s.leaf.hash != h {
			return MessageRef{}, false
		}
		for _, e := range s.leaf.entries {
			if e.key == key {
				return e.ref, true
			}
		}
		return MessageRef{}, false
	}
}

// with returns an index that maps key to ref and otherwise equals x, which is left unchanged.
func (x clientIndex) with(key string, ref MessageRef) clientIndex {
	if x.root == nil {
		x.seed = maphash.MakeSeed()
		x.root = &indexNode{}
	}
	h := maphash.String(x.seed, key)
	root := x.root.with(h, 0, key, ref)
	return clientIndex{root: root, seed: x.seed}
}

// with returns a copy of n with key set.
func (n *indexNode) with(h uint64, shift uint, key string, ref MessageRef) *indexNode {
	bit := uint32(1) << ((h >> shift) & indexMask)
	pos := bits.OnesCount32(n.bitmap & (bit - 1))
	if n.bitmap&bit == 0 {
		slots := make([]indexSlot, 0, len(n.slots)+1)
		slots = append(slots, n.slots[:pos]...)
		slots = append(slots, indexSlot{leaf: &indexLeaf{hash: h, entries: []indexEntry{{key, ref}}}})
		slots = append(slots, n.slots[pos:]...)
		return &indexNode{bitmap: n.bitmap | bit, slots: slots}
	}
	var slot indexSlot
	switch old := n.slots[pos]; {
	case old.child != nil:
		slot.child = old.child.with(h, shift+indexBits, key, ref)
	case old.leaf.hash == h:
		slot.leaf = old.leaf.with(key, ref)
	default:
		// Two hashes meet in this slot: push the old leaf one level down, then add the new key
		// there. They differ in some bit above shift, so they part at some level.
		next := shift + indexBits
		down := &indexNode{
			bitmap: uint32(1) << ((old.leaf.hash >> next) & indexMask),
			slots:  []indexSlot{{leaf: old.leaf}},
		}
		slot.child = down.with(h, next, key, ref)
	}
	slots := append([]indexSlot(nil), n.slots...)
	slots[pos] = slot
	return &indexNode{bitmap: n.bitmap, slots: slots}
}

// with returns a copy of l with key set.
func (l *indexLeaf) with(key string, ref MessageRef) *indexLeaf {
	entries := append(make([]indexEntry, 0, len(l.entries)+1), l.entries...)
	for i, e := range entries {
		if e.key == key {
			entries[i].ref = ref
			return &indexLeaf{hash: l.hash, entries: entries}
		}
	}
	return &indexLeaf{hash: l.hash, entries: append(entries, indexEntry{key, ref})}
}
