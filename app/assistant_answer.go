package app

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Passage is one retrieved chunk as an answerer sees it: numbered from 1 in the order given.
type Passage struct {
	N          int
	DocumentID string
	ChunkID    string
	Title      string
	Heading    string
	Text       string
	Score      float64
	// Lexical is true when full-text search matched the passage (it shares words with the
	// question); Distance is its cosine distance to the question, 0 when the vector side did not
	// find it.
	Lexical  bool
	Distance float64
}

// AnswerInput is what an answerer answers: a customer's question and the passages retrieved for it,
// best first.
type AnswerInput struct {
	Question string
	Passages []Passage
}

// Answer is an answerer's reply.
type Answer struct {
	// Text is the reply to the customer.
	Text string
	// Cited are the numbers of the passages the reply draws on.
	Cited []int
	// PromptSHA256 is the hex sha256 of exactly what the model was given.
	PromptSHA256 string
	// Usage is the model's token usage (zero for the local answerer).
	Usage TokenUsage
}

// Answerer answers a customer's question from retrieved passages.
type Answerer interface {
	// Model names the answerer and its model, as recorded in retrieval.performed.
	Model() string
	// Answer replies to in. Errors: EUNAVAILABLE when the model service failed or timed out,
	// EINVALID when it refused the request.
	Answer(ctx context.Context, in AnswerInput) (Answer, error)
}

// ChatMessage is one message of a chat-completions prompt.
type ChatMessage struct {
	Role    string `json:"role"` // "system", "user" or "assistant"
	Content string `json:"content"`
}

// ChatRequest is a chat-completions request.
type ChatRequest struct {
	Messages []ChatMessage
	// MaxTokens bounds the completion (0: the service's default).
	MaxTokens int
	// Temperature is the sampling temperature.
	Temperature float64
}

// TokenUsage is a model call's token count.
type TokenUsage struct {
	PromptTokens, CompletionTokens, TotalTokens int64
}

// ChatCompletion is a chat model's answer.
type ChatCompletion struct {
	Content      string
	FinishReason string
	Usage        TokenUsage
}

// ChatModel is an OpenAI-compatible chat-completions API (adapters/openai.Chat).
type ChatModel interface {
	// Model names the model, such as "openai:gpt-4o-mini".
	Model() string
	// Complete returns the model's completion of req. Errors: EUNAVAILABLE when the service fails,
	// is rate-limited beyond the context's deadline or times out; EINVALID when it refuses the
	// request.
	Complete(ctx context.Context, req ChatRequest) (ChatCompletion, error)
}

// ChatAnswerer answers with a chat model: the passages go into the prompt numbered [1], [2], …,
// with instructions to answer only from them, to cite them by number, and to say so when they do
// not hold the answer. The cited numbers are read back from the answer's text.
type ChatAnswerer struct {
	model     ChatModel
	maxTokens int
}

var _ Answerer = (*ChatAnswerer)(nil)

// NewChatAnswerer returns an answerer on model; maxTokens bounds each completion (0: 600).
func NewChatAnswerer(model ChatModel, maxTokens int) *ChatAnswerer {
	if maxTokens <= 0 {
		maxTokens = 600
	}
	return &ChatAnswerer{model: model, maxTokens: maxTokens}
}

// Model implements Answerer.
func (a *ChatAnswerer) Model() string { return a.model.Model() }

// assistantSystemPrompt is the chat answerer's instructions. Changing it changes every prompt's
// hash, which is what retrieval.performed records.
const assistantSystemPrompt = `You are a customer support assistant. Answer the customer's question using only the numbered context passages below.
Cite every passage you use by its number in square brackets, like [1] or [2][3], right after the sentence it supports.
If the passages do not contain the answer, say plainly that you do not know from the available documentation and that a member of the team will follow up; do not guess and do not cite anything then.
Be brief and friendly, and answer in the customer's language.`

// ChatPrompt returns the chat messages the chat answerer sends for in.
func ChatPrompt(in AnswerInput) []ChatMessage {
	var b strings.Builder
	b.WriteString(assistantSystemPrompt)
	b.WriteString("\n\nContext passages:\n")
	if len(in.Passages) == 0 {
		b.WriteString("(none: nothing in the documentation matched the question)\n")
	}
	for _, p := range in.Passages {
		fmt.Fprintf(&b, "\n[%d] %s", p.N, p.Title)
		if p.Heading != "" {
			b.WriteString(" — " + p.Heading)
		}
		b.WriteString("\n" + strings.TrimSpace(p.Text) + "\n")
	}
	return []ChatMessage{{Role: "system", Content: b.String()}, {Role: "user", Content: in.Question}}
}

// promptHash is the hex sha256 of a prompt's JSON.
func promptHash(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		b = []byte(fmt.Sprint(v))
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Answer implements Answerer.
func (a *ChatAnswerer) Answer(ctx context.Context, in AnswerInput) (Answer, error) {
	msgs := ChatPrompt(in)
	req := ChatRequest{Messages: msgs, MaxTokens: a.maxTokens, Temperature: 0.2}
	hash := promptHash(struct {
		Model    string        `json:"model"`
		Messages []ChatMessage `json:"messages"`
	}{a.model.Model(), msgs})
	c, err := a.model.Complete(ctx, req)
	if err != nil {
		return Answer{PromptSHA256: hash}, err
	}
	text := strings.TrimSpace(c.Content)
	return Answer{Text: text, Cited: citedNumbers(text, len(in.Passages)), PromptSHA256: hash, Usage: c.Usage}, nil
}

// citeRef matches a citation such as [2] or [1, 3] in an answer.
var citeRef = regexp.MustCompile(`\[(\d{1,2}(?:\s*,\s*\d{1,2})*)\]`)

// citedNumbers returns the passage numbers (1..n) an answer cites, each once, in order of first
// citation.
func citedNumbers(text string, n int) []int {
	var out []int
	seen := map[int]bool{}
	for _, m := range citeRef.FindAllStringSubmatch(text, -1) {
		for _, part := range strings.Split(m[1], ",") {
			k, err := strconv.Atoi(strings.TrimSpace(part))
			if err != nil || k < 1 || k > n || seen[k] {
				continue
			}
			seen[k] = true
			out = append(out, k)
		}
	}
	return out
}

// LocalAnswererModel is the name the local extractive answerer records as its model.
const LocalAnswererModel = "local-extractive-v1"

// LocalAnswerer answers with no model, offline: it replies with the most relevant passages — the
// sentences of each that share most words with the question — under their titles, numbered as
// citations. Passages that share no word with the question and are not close to it are left out;
// with none left it says it found nothing.
type LocalAnswerer struct {
	// MaxPassages is how many passages a reply quotes (default 3); MaxExcerpt bounds each quote in
	// characters (default 400); MaxDistance is the largest cosine distance of a passage that
	// full-text search did not match (default 0.6).
	MaxPassages, MaxExcerpt int
	MaxDistance             float64
}

var _ Answerer = LocalAnswerer{}

// Model implements Answerer.
func (LocalAnswerer) Model() string { return LocalAnswererModel }

// Answer implements Answerer.
func (l LocalAnswerer) Answer(_ context.Context, in AnswerInput) (Answer, error) {
	if l.MaxPassages <= 0 {
		l.MaxPassages = 3
	}
	if l.MaxExcerpt <= 0 {
		l.MaxExcerpt = 400
	}
	if l.MaxDistance <= 0 {
		l.MaxDistance = 0.6
	}
	type prompt struct {
		Model    string   `json:"model"`
		Question string   `json:"question"`
		Chunks   []string `json:"chunks"`
	}
	used := prompt{Model: LocalAnswererModel, Question: in.Question, Chunks: []string{}}
	terms := questionTerms(in.Question)
	var b strings.Builder
	var cited []int
	for _, p := range in.Passages {
		if len(cited) == l.MaxPassages {
			break
		}
		if !p.Lexical && (p.Distance <= 0 || p.Distance > l.MaxDistance) {
			continue
		}
		if len(cited) == 0 {
			b.WriteString("Here is what I found in our documentation:\n")
		}
		title := p.Title
		if p.Heading != "" && p.Heading != p.Title {
			title += " — " + p.Heading
		}
		fmt.Fprintf(&b, "\n[%d] %s\n%s\n", len(cited)+1, title, excerpt(p.Text, terms, l.MaxExcerpt))
		cited = append(cited, p.N)
		used.Chunks = append(used.Chunks, p.ChunkID)
	}
	if len(cited) == 0 {
		return Answer{Text: "I could not find anything about that in our documentation. A member of our team will get back to you.",
			PromptSHA256: promptHash(used)}, nil
	}
	return Answer{Text: strings.TrimSpace(b.String()), Cited: cited, PromptSHA256: promptHash(used)}, nil
}

// questionTerms are the lower-cased words of at least three letters of a question.
func questionTerms(q string) map[string]bool {
	out := map[string]bool{}
	for _, w := range strings.FieldsFunc(strings.ToLower(q), func(r rune) bool {
		return (r < 'a' || r > 'z') && (r < '0' || r > '9') && r <= 127
	}) {
		if utf8.RuneCountInString(w) >= 3 && !stopWords[w] {
			out[w] = true
		}
	}
	return out
}

var stopWords = map[string]bool{"the": true, "and": true, "for": true, "how": true, "what": true, "can": true,
	"you": true, "your": true, "with": true, "does": true, "are": true, "this": true, "that": true, "from": true,
	"have": true, "when": true, "where": true, "which": true, "who": true, "why": true, "our": true, "about": true}

// excerpt returns the run of consecutive sentences of text, at most maxLen characters, that holds
// most question terms (the text's start when none does).
func excerpt(text string, terms map[string]bool, maxLen int) string {
	sentences := splitSentences(text)
	bestStart, bestEnd, bestScore := 0, 0, -1
	for i := range sentences {
		score, n := 0, 0
		j := i
		for ; j < len(sentences); j++ {
			l := utf8.RuneCountInString(sentences[j])
			if n > 0 && n+l+1 > maxLen {
				break
			}
			n += l + 1
			for w := range questionTerms(sentences[j]) {
				if terms[w] {
					score++
				}
			}
		}
		if score > bestScore {
			bestStart, bestEnd, bestScore = i, j, score
		}
	}
	out := strings.Join(sentences[bestStart:bestEnd], " ")
	if utf8.RuneCountInString(out) > maxLen {
		out = string([]rune(out)[:maxLen-1]) + "…"
	}
	return out
}

// splitSentences splits text after '.', '!', '?' and newlines, trimming each part.
func splitSentences(text string) []string {
	var out []string
	start := 0
	for i, r := range text {
		if r == '.' || r == '!' || r == '?' || r == '\n' {
			if s := strings.TrimSpace(text[start : i+1]); s != "" {
				out = append(out, s)
			}
			start = i + 1
		}
	}
	if s := strings.TrimSpace(text[start:]); s != "" {
		out = append(out, s)
	}
	if len(out) == 0 {
		out = []string{""}
	}
	return out
}
