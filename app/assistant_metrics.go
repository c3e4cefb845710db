package app

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// AssistantMetrics are the assistant's series. Create them once per registry with
// NewAssistantMetrics and pass them in AssistantConfig.Metrics; a nil *AssistantMetrics records
// nothing.
type AssistantMetrics struct {
	replies  *prometheus.CounterVec
	errors   *prometheus.CounterVec
	duration prometheus.Histogram
	tokens   *prometheus.CounterVec
}

// NewAssistantMetrics creates the assistant's series and registers them on reg:
//
//   - metachat_assistant_replies_total{outcome}: replies stored, outcome "answered" or
//     "fallback";
//   - metachat_assistant_errors_total{stage, kind}: failures that led to the fallback reply, stage
//     "retrieval" or "answer", kind "timeout", "unavailable", "invalid" or "internal";
//   - metachat_assistant_answer_duration_seconds (histogram): one answer, from the retrieval to the
//     answerer's reply or failure;
//   - metachat_llm_tokens_total{kind}: chat model tokens, kind "prompt" or "completion".
func NewAssistantMetrics(reg prometheus.Registerer) (*AssistantMetrics, error) {
	if reg == nil {
		return nil, errors.New("assistant metrics: nil registerer")
	}
	m := &AssistantMetrics{
		replies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "metachat_assistant_replies_total",
			Help: "Assistant replies stored, by outcome (answered, fallback).",
		}, []string{"outcome"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "metachat_assistant_errors_total",
			Help: "Assistant failures answered with the fallback reply, by stage (retrieval, answer) and kind.",
		}, []string{"stage", "kind"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "metachat_assistant_answer_duration_seconds",
			Help:    "Time from the start of retrieval to the answerer's reply or failure.",
			Buckets: []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 20, 30, 60},
		}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "metachat_llm_tokens_total",
			Help: "Chat model tokens used by the assistant, by kind (prompt, completion).",
		}, []string{"kind"}),
	}
	for _, c := range []prometheus.Collector{m.replies, m.errors, m.duration, m.tokens} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("assistant metrics: %w", err)
		}
	}
	return m, nil
}

func (m *AssistantMetrics) replied(outcome string) {
	if m != nil {
		m.replies.WithLabelValues(outcome).Inc()
	}
}

func (m *AssistantMetrics) failed(stage, kind string) {
	if m != nil {
		m.errors.WithLabelValues(stage, kind).Inc()
	}
}

func (m *AssistantMetrics) answered(d time.Duration, u TokenUsage) {
	if m == nil {
		return
	}
	m.duration.Observe(d.Seconds())
	if u.PromptTokens > 0 {
		m.tokens.WithLabelValues("prompt").Add(float64(u.PromptTokens))
	}
	if u.CompletionTokens > 0 {
		m.tokens.WithLabelValues("completion").Add(float64(u.CompletionTokens))
	}
}
