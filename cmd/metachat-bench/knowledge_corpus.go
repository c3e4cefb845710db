package main

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
)

// The distractor corpus of the knowledge evaluation: documents a retailer's knowledge base might
// hold beside the evaluation's. They are generated, not written, so their sentences say nothing;
// what matters for retrieval is that their words are realistic: English stop words, then the
// shop's own vocabulary (orders, delivery, refunds, accounts, payments, devices, stores) mixed
// with a long tail of made-up words, in a Zipf distribution, so that the evaluation's question
// words occur in hundreds or thousands of distractor chunks, as they would in a real knowledge
// base, and neither full-text nor vector search can tell the answers apart by vocabulary alone.

// distractorStopWords are English function words, the most frequent words of any text.
var distractorStopWords = strings.Fields(`the a to of and in is for you your it on with be are this that
	we our as at by or from can will not if an all when any have has which their they more may after
	before about into than then also each other only these there its was been but so do does up out`)

// distractorWords are common English and retail words, in no particular order: a shop's
// documents use them all, the evaluation's questions too.
var distractorWords = strings.Fields(`order orders ordered delivery deliver delivered shipping ship
	shipped parcel package courier tracking track number email emails message refund refunds
	refunded return returns returned exchange item items product products price prices payment
	payments pay paid card cards credit debit invoice invoices billing bill account accounts password
	sign login security code verification phone app mobile device devices battery charger screen
	warranty repair repairs damage damaged defect defects replacement replace store stores shop
	opening hours open closed day days week weeks month months year years time times date dates
	customer customers service support team contact help question questions request requests
	form page pages website link links button settings profile address addresses name names country
	countries international local standard express free cost costs fee fees charge charges tax taxes
	customs duty duties discount discounts voucher vouchers coupon points point member members
	loyalty programme plan plans subscription subscriptions monthly annual cancel cancelled renew
	renewal upgrade downgrade trial period periods data privacy personal policy policies terms
	conditions rights request deleted delete remove update updated change changes new old first last
	next previous available unavailable stock size sizes colour colours model models version
	versions feature features include includes included guide manual instructions step steps
	check checked list lists report reports note notes key keys api developer developers access token
	tokens limit limits rate rates per second minute minutes hour hours morning evening weekend
	monday tuesday wednesday thursday friday saturday sunday holiday holidays location locations
	city cities berlin hamburg munich paris london online offline collect collection pick pickup
	click label labels box boxes post office drop point counter seller brand brands quality materials
	cotton leather wood steel glass plastic kitchen garden home office outdoor sport sports clothing
	shoes jacket shirt table chair lamp camera headphones speaker watch laptop tablet phone cable
	gift gifts card balance total amount method methods bank transfer paypal cash receipt receipts
	confirmation confirm confirmed status pending processing ready failed error errors problem
	problems issue issues solution solutions fix fixed working works work use used using user users
	get got make made take taken give given send sent receive received keep kept find found show
	shows see need needs want like know think look looks come comes go goes start started end ended
	stay stays move moves hold held leave left set run runs read write call calls wait waits
	business working quick quickly fast slow late early long short small large big high low full
	half two three four five six seven ten twenty thirty hundred euro euros percent`)

// distractorLongTail is how many made-up words stand for the long tail of a real vocabulary
// (product and place names, rare words): the shop's words are spread among them, so that each is
// as frequent as a word of that rank in real text, not all among the most frequent ones.
const distractorLongTail = 4000

// distractorVocabulary returns the corpus's words, most frequent first: the stop words, then the
// shop's words and the made-up long tail in a shuffled order (so which of them is common is
// chance, not chosen).
func distractorVocabulary(rng *rand.Rand) []string {
	const letters = "abcdefghijklmnopqrstuvwxyz"
	words := append([]string(nil), distractorWords...)
	for i := 0; i < distractorLongTail; i++ {
		b := make([]byte, 4+rng.IntN(6))
		for j := range b {
			b[j] = letters[rng.IntN(len(letters))]
		}
		words = append(words, string(b))
	}
	rng.Shuffle(len(words), func(i, j int) { words[i], words[j] = words[j], words[i] })
	return append(append([]string(nil), distractorStopWords...), words...)
}

// zipf draws ranks 0…n-1 with probability proportional to 1/(rank+1), as word frequencies are.
type zipf struct {
	cdf []float64
}

func newZipf(n int) zipf {
	z := zipf{cdf: make([]float64, n)}
	sum := 0.0
	for i := range z.cdf {
		sum += 1 / float64(i+1)
		z.cdf[i] = sum
	}
	for i := range z.cdf {
		z.cdf[i] /= sum
	}
	return z
}

func (z zipf) draw(rng *rand.Rand) int {
	return sort.SearchFloat64s(z.cdf, rng.Float64())
}

// distractorCorpus generates distractor documents.
type distractorCorpus struct {
	rng   *rand.Rand
	vocab []string
	z     zipf
}

func newDistractorCorpus(seed uint64) *distractorCorpus {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	vocab := distractorVocabulary(rng)
	return &distractorCorpus{rng: rng, vocab: vocab, z: newZipf(len(vocab))}
}

func (c *distractorCorpus) word() string { return c.vocab[c.z.draw(c.rng)] }

// contentWord is a word that is not a stop word, for titles and headings.
func (c *distractorCorpus) contentWord() string {
	for {
		if w := c.word(); !isDistractorStopWord(w) {
			return w
		}
	}
}

func isDistractorStopWord(w string) bool {
	for _, s := range distractorStopWords {
		if s == w {
			return true
		}
	}
	return false
}

// sentence is 6-20 words, capitalised, ending with a full stop.
func (c *distractorCorpus) sentence(b *strings.Builder) {
	n := 6 + c.rng.IntN(15)
	for i := 0; i < n; i++ {
		w := c.word()
		if i == 0 {
			w = strings.ToUpper(w[:1]) + w[1:]
		} else {
			b.WriteByte(' ')
		}
		b.WriteString(w)
	}
	b.WriteString(". ")
}

// document returns a title and a Markdown text of about syntheticChunksPerDoc chunks: sections
// with a heading of two or three words, each of two paragraphs of about 90 words.
func (c *distractorCorpus) document() (title, text string) {
	title = fmt.Sprintf("%s %s %d", c.contentWord(), c.contentWord(), c.rng.IntN(1000))
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n\n", title)
	for s := 0; s < syntheticChunksPerDoc/2; s++ {
		b.WriteString("## ")
		for i := 0; i < 2+c.rng.IntN(2); i++ {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(c.contentWord())
		}
		b.WriteString("\n\n")
		for p := 0; p < 2; p++ {
			start := b.Len()
			for b.Len()-start < 650 {
				c.sentence(&b)
			}
			b.WriteString("\n\n")
		}
	}
	return title, b.String()
}
