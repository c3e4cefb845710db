package httpapi

import (
	"net/url"
	"strconv"
	"time"

	"github.com/metachat/metachat/app"
	"github.com/metachat/metachat/domain"
)

// conversationJSON is the contract's Conversation.
type conversationJSON struct {
	ID               string         `json:"id"`
	Channel          string         `json:"channel"`
	Status           string         `json:"status"`
	Contact          domain.Contact `json:"contact"`
	AssistantEnabled bool           `json:"assistant_enabled"`
	AssigneeID       *string        `json:"assignee_id"`
	CreatedAt        time.Time      `json:"created_at"`
	LastMessageAt    *time.Time     `json:"last_message_at"`
}

func toConversationJSON(c app.Conversation) conversationJSON {
	out := conversationJSON{
		ID: c.ID, Channel: c.Channel, Status: c.Status, Contact: c.Contact, AssistantEnabled: c.AssistantEnabled,
		CreatedAt: c.CreatedAt,
	}
	if c.AssigneeID != "" {
		out.AssigneeID = &c.AssigneeID
	}
	if !c.LastMessageAt.IsZero() {
		out.LastMessageAt = &c.LastMessageAt
	}
	return out
}

// conversationListJSON is the contract's ConversationList.
type conversationListJSON struct {
	Items      []conversationJSON `json:"items"`
	NextCursor *string            `json:"next_cursor"`
}

// messageJSON is the contract's Message.
type messageJSON struct {
	ID              string        `json:"id"`
	ConversationID  string        `json:"conversation_id"`
	Seq             uint64        `json:"seq"`
	Text            string        `json:"text"`
	Author          domain.Author `json:"author"`
	ClientMessageID string        `json:"client_message_id,omitempty"`
	CreatedAt       time.Time     `json:"created_at"`
	// Citations is always an array: the knowledge chunks an assistant's reply draws on, empty
	// for every other message.
	Citations []domain.Citation `json:"citations"`
}

func toMessageJSON(m app.Message) messageJSON {
	cites := m.Citations
	if cites == nil {
		cites = []domain.Citation{}
	}
	return messageJSON{
		ID: m.ID, ConversationID: m.ConversationID, Seq: m.Seq, Text: m.Text, Author: m.Author,
		ClientMessageID: m.ClientMessageID, CreatedAt: m.CreatedAt, Citations: cites,
	}
}

// messageListJSON is the contract's MessageList.
type messageListJSON struct {
	Items []messageJSON `json:"items"`
}

// convQueryInt reads an optional integer query parameter (validated by the contract); absent is 0.
func convQueryInt(q url.Values, name string) (int, error) {
	v := q.Get(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, domain.Invalid("Invalid query parameter.", domain.FieldError{Field: name, Message: "must be an integer"})
	}
	return n, nil
}
