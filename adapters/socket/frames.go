package socket

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/metachat/metachat/app"
	"github.com/metachat/metachat/domain"
)

// Client frame types (see docs/widget-protocol.md).
const (
	frameSend   = "send"
	frameResume = "resume"
	frameTyping = "typing"
)

// clientFrame is a frame from the browser.
type clientFrame struct {
	Type            string  `json:"type"`
	ClientMessageID string  `json:"client_message_id,omitempty"`
	Text            string  `json:"text,omitempty"`
	AfterSeq        *uint64 `json:"after_seq,omitempty"`
}

// errFrame is a refused client frame: its code and message go back in an error frame.
type errFrame struct {
	code, message string
}

func (e *errFrame) Error() string { return e.code + ": " + e.message }

func invalidFrame(format string, args ...any) error {
	return &errFrame{code: codeInvalid, message: fmt.Sprintf(format, args...)}
}

// parseClientFrame decodes and checks one client frame: a JSON object of a known type with
// exactly that type's fields. The text and client message id are checked further by the send
// itself (the same rules as the REST API).
func parseClientFrame(data []byte) (clientFrame, error) {
	var f clientFrame
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return clientFrame{}, invalidFrame("The frame is not a JSON object of a known shape.")
	}
	if dec.More() {
		return clientFrame{}, invalidFrame("The frame holds more than one JSON value.")
	}
	switch f.Type {
	case frameSend:
		if f.ClientMessageID == "" || len(f.ClientMessageID) > domain.MaxClientMessageIDLen {
			return clientFrame{}, invalidFrame("A send needs a client_message_id of 1 to %d characters.", domain.MaxClientMessageIDLen)
		}
		if f.AfterSeq != nil {
			return clientFrame{}, invalidFrame("A send has no after_seq.")
		}
	case frameResume:
		if f.AfterSeq == nil || f.ClientMessageID != "" || f.Text != "" {
			return clientFrame{}, invalidFrame("A resume needs after_seq and nothing else.")
		}
	case frameTyping:
		if f.AfterSeq != nil || f.ClientMessageID != "" || f.Text != "" {
			return clientFrame{}, invalidFrame("A typing frame has no other fields.")
		}
	default:
		return clientFrame{}, invalidFrame("Unknown frame type; use send, resume or typing.")
	}
	return f, nil
}

// Server frames.
type ackFrame struct {
	Type            string `json:"type"`
	ClientMessageID string `json:"client_message_id"`
	ID              string `json:"id"`
	Seq             uint64 `json:"seq"`
}

type messageFrame struct {
	Type            string        `json:"type"`
	ID              string        `json:"id"`
	Seq             uint64        `json:"seq"`
	Text            string        `json:"text"`
	Author          domain.Author `json:"author"`
	CreatedAt       time.Time     `json:"created_at"`
	ClientMessageID string        `json:"client_message_id,omitempty"`
	// Citations are the knowledge chunks an assistant's reply draws on; absent for other
	// messages.
	Citations []domain.Citation `json:"citations,omitempty"`
}

type typingFrame struct {
	Type   string        `json:"type"`
	Author domain.Author `json:"author"`
}

type errorFrame struct {
	Type            string `json:"type"`
	Code            string `json:"code"`
	Message         string `json:"message"`
	ClientMessageID string `json:"client_message_id,omitempty"`
}

// Error frame codes.
const (
	codeInvalid     = "invalid"
	codeRateLimited = "rate_limited"
	codeConflict    = "conflict"
	codeUnavailable = "unavailable"
)

func messageOut(m *app.Message) messageFrame {
	return messageFrame{Type: "message", ID: m.ID, Seq: m.Seq, Text: m.Text, Author: m.Author,
		CreatedAt: m.CreatedAt.UTC(), ClientMessageID: m.ClientMessageID, Citations: m.Citations}
}

// errorOut turns a refused frame's error into its error frame; the message of an unexpected
// error is generic (its detail goes to the log only).
func errorOut(err error, clientMessageID string) errorFrame {
	var ef *errFrame
	if errors.As(err, &ef) {
		return errorFrame{Type: "error", Code: ef.code, Message: ef.message, ClientMessageID: clientMessageID}
	}
	out := errorFrame{Type: "error", Code: codeUnavailable, Message: "The message could not be stored now; retry it.", ClientMessageID: clientMessageID}
	switch domain.ErrorCode(err) {
	case domain.EINVALID:
		out.Code, out.Message = codeInvalid, domain.ErrorMessage(err)
	case domain.ECONFLICT:
		out.Code, out.Message = codeConflict, domain.ErrorMessage(err)
	}
	return out
}
