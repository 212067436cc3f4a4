package sim

import (
	"math/rand/v2"
	"net/http"
	"sync"
)

// failureInjector fails a share of requests on purpose.
type failureInjector struct {
	rate  float64
	kinds []string

	mu  sync.Mutex
	rng *rand.Rand
}

func newFailureInjector(rate float64, kinds []string, seed int64) *failureInjector {
	if len(kinds) == 0 {
		kinds = allFailures
	}
	return &failureInjector{rate: rate, kinds: kinds, rng: rand.New(rand.NewPCG(uint64(seed), 0xfa11))}
}

// pick returns the error to answer with, or nil.
func (f *failureInjector) pick(model string) *apiError {
	if f.rate <= 0 {
		return nil
	}
	f.mu.Lock()
	hit := f.rng.Float64()*100 < f.rate
	kind := f.kinds[f.rng.IntN(len(f.kinds))]
	f.mu.Unlock()
	if !hit {
		return nil
	}
	switch kind {
	case FailureRateLimit:
		return &apiError{Status: http.StatusTooManyRequests, Type: "RateLimitError", Message: "Rate limit reached for " + model}
	case FailureInvalidAPIKey:
		return &apiError{Status: http.StatusUnauthorized, Type: "AuthenticationError", Message: "Incorrect API key provided."}
	case FailureContextLength:
		return badRequest("This model's maximum context length is exceeded. Please reduce the length of the messages or completion.")
	case FailureInvalidReq:
		return badRequest("Invalid request (injected failure).")
	case FailureModelNotFound:
		return notFound("The model `" + model + "-nonexistent` does not exist.")
	default:
		return internal("The server had an error while processing your request (injected failure).")
	}
}
