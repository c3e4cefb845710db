package eventstore_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/metachat/metachat/domain"
	"github.com/metachat/metachat/eventstore"
)

// FuzzDecodeMsg feeds arbitrary subjects and stored bodies to DecodeMsg: it must never panic, must
// answer EINVALID for what it refuses, and what it accepts must be a complete envelope on the
// subject of its own aggregate.
func FuzzDecodeMsg(f *testing.F) {
	f.Add("ev.t1.tenant.t1", []byte(`{"id":"e1","type":"tenant.created","schema_version":1,"tenant_id":"t1","aggregate_type":"tenant","aggregate_id":"t1","payload":{}}`), uint64(1))
	f.Add("ev.t1.tenant.t2", []byte(`{"id":"e1","type":"x","schema_version":1,"tenant_id":"t1","aggregate_type":"tenant","aggregate_id":"t1"}`), uint64(7))
	f.Add("", []byte(`{"id":"e1","type":"x","schema_version":0}`), uint64(0))
	f.Add("ev.>", []byte(`[]`), uint64(2))
	f.Fuzz(func(t *testing.T, subject string, body []byte, seq uint64) {
		env, err := eventstore.DecodeMsg(subject, body, seq)
		if err != nil {
			if domain.ErrorCode(err) != domain.EINVALID {
				t.Fatalf("error code %q: %v", domain.ErrorCode(err), err)
			}
			return
		}
		if env.ID == "" || env.Type == "" || env.SchemaVersion < 1 || env.Sequence != seq {
			t.Fatalf("accepted incomplete envelope %+v", env)
		}
		if err := env.Aggregate().Validate(); err != nil {
			t.Fatalf("accepted invalid aggregate: %v", err)
		}
		a := env.Aggregate()
		if subject != "" && !strings.HasSuffix(subject, "."+a.TenantID+"."+a.Type+"."+a.ID) {
			t.Fatalf("accepted %s on subject %q", env.Aggregate(), subject)
		}
		if _, err := json.Marshal(env); err != nil {
			t.Fatalf("accepted envelope does not re-encode: %v", err)
		}
	})
}
