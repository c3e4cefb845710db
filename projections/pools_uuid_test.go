package projections_test

import (
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
)

// TestPoolsSendStringUUIDsInBinary shows every pool encoding ids held as strings as binary uuid
// and uuid[] parameters (pgx alone fails that and falls back to text), reading them back equal,
// and leaving strings that are not canonical UUIDs to Postgres, which refuses them as before.
func TestPoolsSendStringUUIDsInBinary(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := t.Context()
	const id = "0190A1B2-C3D4-7E5F-8A9B-0C1D2E3F4A5B"
	for name, pool := range map[string]*pgxpool.Pool{"owner": h.pools.Owner, "app": h.pools.App, "projector": h.pools.Projector} {
		conn, err := pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		m := conn.Conn().TypeMap()
		for _, v := range []any{id, []string{id, id}, []*string{nil}} {
			oid := uint32(pgtype.UUIDArrayOID)
			if _, ok := v.(string); ok {
				oid = pgtype.UUIDOID
			}
			if _, err := m.Encode(oid, pgtype.BinaryFormatCode, v, nil); err != nil {
				t.Errorf("%s pool: binary encoding of %#v: %v", name, v, err)
			}
		}
		var one, many string
		if err := conn.QueryRow(ctx, `SELECT $1::uuid::text, $2::uuid[]::text`, id, []string{id, id}).Scan(&one, &many); err != nil {
			t.Fatalf("%s pool: %v", name, err)
		}
		const lower = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
		if one != lower || many != "{"+lower+","+lower+"}" {
			t.Errorf("%s pool: read back %q and %q", name, one, many)
		}
		// Postgres accepts the braced form; a URN, which uuid.Parse would take, it refuses.
		if err := conn.QueryRow(ctx, `SELECT $1::uuid::text`, "{"+lower+"}").Scan(&one); err != nil || one != lower {
			t.Errorf("%s pool: braced form read back %q, %v", name, one, err)
		}
		var pgErr *pgconn.PgError
		err = conn.QueryRow(ctx, `SELECT $1::uuid::text`, "urn:uuid:"+lower).Scan(&one)
		if !errors.As(err, &pgErr) || pgErr.Code != "22P02" {
			t.Errorf("%s pool: a URN gave %v, want Postgres's invalid_text_representation", name, err)
		}
		conn.Release()
	}
}
