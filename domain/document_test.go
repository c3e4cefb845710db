package domain_test

import (
	"strings"
	"testing"
	"time"

	"github.com/metachat/metachat/domain"
)

func TestDocumentDeciderOneResultPerUpload(t *testing.T) {
	d := domain.DocumentDecider()
	up := domain.DocumentUploaded{DocumentID: "0193f9b4-2c1a-7c3e-9a55-3b1d2f4e5d10", UploadID: "0193f9b4-2c1a-7c3e-9a55-3b1d2f4e5d11",
		Title: " Refunds ", Format: domain.FormatMarkdown, Size: 10, SHA256: strings.Repeat("a", 64), Object: "t/x"}
	evs, err := d.Decide(d.Initial(), domain.UploadDocument{Upload: up})
	if err != nil || len(evs) != 1 || evs[0].(*domain.DocumentUploaded).Title != "Refunds" {
		t.Fatalf("upload: %v %v", evs, err)
	}
	s := d.Evolve(d.Initial(), evs[0])
	if again, _ := d.Decide(s, domain.UploadDocument{Upload: up}); len(again) != 0 {
		t.Errorf("same content again decided %v", again)
	}
	chunks := []domain.Chunk{
		{ChunkID: "0193f9b4-2c1a-7c3e-9a55-3b1d2f4e5d12", Ordinal: 0, Text: strings.Repeat("x", 100)},
		{ChunkID: "0193f9b4-2c1a-7c3e-9a55-3b1d2f4e5d13", Ordinal: 1, Text: strings.Repeat("y", 100)},
	}
	evs, err = d.Decide(s, domain.RecordIndexed{UploadID: up.UploadID, Chunks: chunks, MaxEventBytes: 150, At: time.Now()})
	if err != nil || len(evs) != 3 {
		t.Fatalf("indexed: %d events %v, want 2 chunked + indexed", len(evs), err)
	}
	for _, e := range evs {
		s = d.Evolve(s, e)
	}
	if s.Status != domain.DocumentStatusReady || s.ChunkCount != 2 {
		t.Errorf("state %+v", s)
	}
	if again, _ := d.Decide(s, domain.RecordIndexed{UploadID: up.UploadID, Chunks: chunks}); len(again) != 0 {
		t.Errorf("redelivered result decided %v", again)
	}
	if stale, _ := d.Decide(s, domain.RecordFailed{UploadID: "other", Reason: "x"}); len(stale) != 0 {
		t.Errorf("result of another upload decided %v", stale)
	}
	evs, err = d.Decide(s, domain.DeleteDocument{})
	if err != nil || len(evs) != 1 {
		t.Fatalf("delete: %v %v", evs, err)
	}
	s = d.Evolve(s, evs[0])
	if _, err := d.Decide(s, domain.DeleteDocument{}); domain.ErrorCode(err) != domain.ENOTFOUND {
		t.Errorf("delete twice: %v", err)
	}
	if evs, _ := d.Decide(s, domain.UploadDocument{Upload: up}); len(evs) != 1 {
		t.Errorf("upload after delete decided %v", evs)
	}
}
