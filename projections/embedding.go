package projections

import (
	"context"
	"hash/fnv"
	"math"
	"strconv"
	"strings"
	"unicode"
)

// Embedder turns texts into vectors for the knowledge read model and its searches. Name is the
// embedder and its version ("local-lexical-v1", "openai:text-embedding-3-small"); it is stored with
// every chunk and keys the embedding cache, so an embedder that changes its output must change its
// name. Switching embedder is a rebuild of the knowledge projection beside the old generation.
type Embedder interface {
	Name() string
	// Dimensions is the length of every vector Embed returns.
	Dimensions() int
	// Embed returns one vector per text, in order. A failure of the embedding service that may
	// pass is a domain EUNAVAILABLE error (the projection retries it instead of stopping).
	Embed(ctx context.Context, texts []string) ([][]float32, error)
}

// LocalEmbedderName is the name and version of LocalEmbedder's output.
const LocalEmbedderName = "local-lexical-v1"

// localDims is the length of LocalEmbedder's vectors.
const localDims = 384

// LocalEmbedder is an embedder that works offline with no model: a hashed bag of words, word
// bigrams and character trigrams, weighted by log term frequency and L2-normalised (feature
// hashing with a sign hash, 384 dimensions). It is lexical — it matches shared words and word
// pieces, not meaning: "refund" finds "refunds" and "refunded", but not "money back". Full-text
// search covers the same ground better for exact words; the vector side adds robustness to
// spelling variants and partial words. Configure an OpenAI-compatible embedder for semantic
// matching.
type LocalEmbedder struct{}

// NewLocalEmbedder returns the local lexical embedder.
func NewLocalEmbedder() LocalEmbedder { return LocalEmbedder{} }

// Name implements Embedder.
func (LocalEmbedder) Name() string { return LocalEmbedderName }

// Dimensions implements Embedder.
func (LocalEmbedder) Dimensions() int { return localDims }

// Embed implements Embedder; it never fails.
func (LocalEmbedder) Embed(_ context.Context, texts []string) ([][]float32, error) {
	out := make([][]float32, len(texts))
	for i, t := range texts {
		out[i] = LocalEmbed(t)
	}
	return out, nil
}

// isStopword reports the words LocalEmbed leaves out of its word features: they match everything.
func isStopword(w string) bool {
	switch w {
	case "a", "an", "and", "are", "as", "at", "be", "by", "can", "do", "does", "for", "from", "has", "have",
		"how", "i", "if", "in", "is", "it", "its", "me", "my", "of", "on", "or", "our", "so", "that", "the",
		"their", "there", "this", "to", "was", "we", "what", "when", "where", "which", "who", "why", "will",
		"with", "you", "your":
		return true
	}
	return false
}

// LocalEmbed is LocalEmbedder's vector of one text.
func LocalEmbed(text string) []float32 {
	counts := map[string]float64{}
	words := strings.FieldsFunc(strings.ToLower(text), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
	prev := ""
	for _, w := range words {
		if isStopword(w) {
			prev = ""
			continue
		}
		stem := lightStem(w)
		counts["w:"+stem] += 1
		if prev != "" {
			counts["b:"+prev+" "+stem] += 0.5
		}
		prev = stem
		padded := []rune("<" + w + ">")
		for j := 0; j+3 <= len(padded); j++ {
			counts["c:"+string(padded[j:j+3])] += 0.25
		}
	}
	v := make([]float32, localDims)
	h := fnv.New64a()
	for f, c := range counts {
		h.Reset()
		_, _ = h.Write([]byte(f))
		x := h.Sum64()
		sign := float32(1)
		if x>>63 == 1 {
			sign = -1
		}
		v[x%localDims] += sign * float32(math.Log1p(c))
	}
	var norm float64
	for _, x := range v {
		norm += float64(x) * float64(x)
	}
	if norm == 0 {
		return v
	}
	inv := float32(1 / math.Sqrt(norm))
	for i := range v {
		v[i] *= inv
	}
	return v
}

// lightStem strips a few English suffixes so that inflections share a feature.
func lightStem(w string) string {
	for _, suf := range []string{"ing", "ed", "es", "s"} {
		if len(w) > len(suf)+3 && strings.HasSuffix(w, suf) {
			return w[:len(w)-len(suf)]
		}
	}
	return w
}

// VectorLiteral renders v in pgvector's text form, "[0.1,0.2,…]", for a $n::vector parameter.
func VectorLiteral(v []float32) string {
	var b strings.Builder
	b.Grow(len(v) * 10)
	b.WriteByte('[')
	for i, x := range v {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatFloat(float64(x), 'g', 7, 32))
	}
	b.WriteByte(']')
	return b.String()
}

// ParseVector parses pgvector's text form.
func ParseVector(s string) ([]float32, error) {
	s = strings.TrimSpace(s)
	if len(s) < 2 || s[0] != '[' || s[len(s)-1] != ']' {
		return nil, strconv.ErrSyntax
	}
	s = s[1 : len(s)-1]
	if s == "" {
		return nil, nil
	}
	parts := strings.Split(s, ",")
	out := make([]float32, len(parts))
	for i, p := range parts {
		f, err := strconv.ParseFloat(strings.TrimSpace(p), 32)
		if err != nil {
			return nil, err
		}
		out[i] = float32(f)
	}
	return out, nil
}
