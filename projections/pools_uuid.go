package projections

import (
	"errors"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
)

// Metachat passes ids to Postgres as Go strings. pgx prefers the binary format for uuid
// parameters but has no binary plan for a string, so every such parameter first failed (building
// an error that formats the whole argument, for an array every element) and was then sent as
// text: measurable on every projected batch. stringUUIDCodec gives strings a binary plan.

// stringUUIDCodec is pgx's UUIDCodec that also encodes a string (the textual form) in binary.
type stringUUIDCodec struct{ pgtype.UUIDCodec }

// PlanEncode plans a string in binary format with stringUUIDPlan, and all else as UUIDCodec does.
func (c stringUUIDCodec) PlanEncode(m *pgtype.Map, oid uint32, format int16, value any) pgtype.EncodePlan {
	if _, ok := value.(string); ok && format == pgtype.BinaryFormatCode {
		return stringUUIDPlan{}
	}
	return c.UUIDCodec.PlanEncode(m, oid, format, value)
}

// stringUUIDPlan encodes a string holding a UUID as its 16 bytes. A string that is not a UUID is
// an error, and pgx then sends it as text, where Postgres refuses it as it always did.
type stringUUIDPlan struct{}

// Encode appends the 16 bytes of the UUID in value, which must have the canonical 36-character
// form (other forms, some of which uuid.Parse accepts and Postgres does not, go as text).
func (stringUUIDPlan) Encode(value any, buf []byte) ([]byte, error) {
	s := value.(string)
	if len(s) != 36 {
		return nil, errors.New("not a UUID in its canonical form")
	}
	id, err := uuid.Parse(s)
	if err != nil {
		return nil, err
	}
	return append(buf, id[:]...), nil
}

// registerStringUUIDs makes m encode strings as binary uuid and uuid[] parameters.
func registerStringUUIDs(m *pgtype.Map) {
	t := &pgtype.Type{Name: "uuid", OID: pgtype.UUIDOID, Codec: stringUUIDCodec{}}
	m.RegisterType(t)
	m.RegisterType(&pgtype.Type{Name: "_uuid", OID: pgtype.UUIDArrayOID, Codec: &pgtype.ArrayCodec{ElementType: t}})
}
