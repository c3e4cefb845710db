package app

import (
	"encoding/base64"
	"encoding/binary"
	"time"

	"github.com/google/uuid"

	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/projections"
)

// Conversation cursors: unpadded base64url of a version byte (1), the last activity time in
// microseconds since 1970 (8 bytes, big-endian) and the conversation id (16 bytes). The read
// model keeps times in microseconds, so a key survives the round trip exactly.
const (
	convCursorVersion = 1
	convCursorLen     = 1 + 8 + 16
	// maxCursorMicros is the start of the year 10000: later times are no activity time.
	maxCursorMicros = 253402300800 * 1000000
)

// ConversationCursor returns the opaque cursor of the page that follows the conversation at key.
func ConversationCursor(key projections.ConversationKey) string {
	var b [convCursorLen]byte
	b[0] = convCursorVersion
	binary.BigEndian.PutUint64(b[1:9], uint64(key.LastActivityAt.UnixMicro()))
	id, _ := uuid.Parse(key.ID) // keys come from the read model: always UUIDs
	copy(b[9:], id[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// ParseConversationCursor returns the key of a cursor made by ConversationCursor; anything else is
// EINVALID. A cursor is a position only: the listing is still the caller's tenant's.
func ParseConversationCursor(cursor string) (projections.ConversationKey, error) {
	bad := domain.Invalid("Invalid cursor.", domain.FieldError{Field: "cursor", Message: "is not a cursor this listing returned"})
	if base64.RawURLEncoding.EncodedLen(convCursorLen) != len(cursor) {
		return projections.ConversationKey{}, bad
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(cursor)
	if err != nil || len(b) != convCursorLen || b[0] != convCursorVersion {
		return projections.ConversationKey{}, bad
	}
	id, err := uuid.FromBytes(b[9:])
	if err != nil {
		return projections.ConversationKey{}, bad
	}
	micros := int64(binary.BigEndian.Uint64(b[1:9]))
	if micros < 0 || micros > maxCursorMicros {
		return projections.ConversationKey{}, bad
	}
	at := time.UnixMicro(micros).UTC()
	return projections.ConversationKey{LastActivityAt: at, ID: id.String()}, nil
}
