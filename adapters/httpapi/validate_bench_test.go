package httpapi

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// benchSendBody is a realistic message send, as the message-send benchmark posts it.
const benchSendBody = `{"text":"Hello, this is bench message 1. How can I help you today?","client_message_id":"bench-1"}`

// BenchmarkValidateSendMessage measures the contract validation of one message send
// (POST /api/v1/conversations/{conversation_id}/messages) against the served OpenAPI document:
// the cost that every request of the hot route pays before its handler runs.
func BenchmarkValidateSendMessage(b *testing.B) { benchValidateSend(b, false) }

// BenchmarkValidateSendMessageValidatorOnly is BenchmarkValidateSendMessage without the
// operation's precompiled check, every request going through libopenapi-validator as before the
// checks existed: the baseline, measured in the same run and under the same load.
func BenchmarkValidateSendMessageValidatorOnly(b *testing.B) { benchValidateSend(b, true) }

// benchValidateSend validates the send benchSendBody over and over, with the operation's
// precompiled check or (withoutCheck) without it.
func benchValidateSend(b *testing.B, withoutCheck bool) {
	s, err := NewServer(Config{})
	if err != nil {
		b.Fatal(err)
	}
	op, ok := s.contract.operation(http.MethodPost, "/api/v1/conversations/{conversation_id}/messages")
	if !ok {
		b.Fatal("sendMessage is not in the contract")
	}
	if withoutCheck {
		op = validatorOnly(op)
	}
	body := []byte(benchSendBody)
	r := httptest.NewRequest(http.MethodPost, "/api/v1/conversations/0b7e6a52-3c1d-4f7e-9a2b-5d8c1e4f6a70/messages", nil)
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Authorization", "Bearer mck_bench")
	b.ReportAllocs()
	for b.Loop() {
		r.Body = io.NopCloser(bytes.NewReader(body))
		if err := s.validate(op, r); err != nil {
			b.Fatal(err)
		}
	}
}
