package tokenizer

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nikolalohinski/gonja/v2"
	"github.com/nikolalohinski/gonja/v2/config"
	"github.com/nikolalohinski/gonja/v2/exec"
	"github.com/nikolalohinski/gonja/v2/loaders"
)

// chatTemplate is a model's Jinja2 chat template, rendered the way
// Hugging Face's apply_chat_template does: blocks trimmed and left-stripped,
// with messages, bos_token, eos_token and add_generation_prompt in scope.
type chatTemplate struct {
	tpl      *exec.Template
	bos, eos string
}

// templateConfig matches the Jinja environment Hugging Face renders chat
// templates in.
var templateConfig = func() *config.Config {
	c := config.New()
	c.TrimBlocks = true
	c.LeftStripBlocks = true
	return c
}()

// templateEnvironment is gonja's default environment plus the helpers chat
// templates call.
var templateEnvironment = &exec.Environment{
	Context: gonja.DefaultContext.Inherit().Update(exec.NewContext(map[string]any{
		"raise_exception": func(msg string) (string, error) { return "", fmt.Errorf("chat template: %s", msg) },
		"strftime_now":    func(layout string) string { return strftime(time.Now(), layout) },
	})),
	Filters:           gonja.DefaultEnvironment.Filters,
	Tests:             gonja.DefaultEnvironment.Tests,
	ControlStructures: gonja.DefaultEnvironment.ControlStructures,
	Methods:           gonja.DefaultEnvironment.Methods,
}

func newChatTemplate(source, bos, eos string) (*chatTemplate, error) {
	const name = "/chat_template"
	loader, err := loaders.NewMemoryLoader(map[string]string{name: source})
	if err != nil {
		return nil, err
	}
	tpl, err := exec.NewTemplate(name, templateConfig, loader, templateEnvironment)
	if err != nil {
		return nil, fmt.Errorf("parse chat template: %w", err)
	}
	return &chatTemplate{tpl: tpl, bos: bos, eos: eos}, nil
}

// render turns messages into the prompt text.
func (c *chatTemplate) render(messages []Message, addGenerationPrompt bool) (s string, err error) {
	// A template is user-supplied code: an evaluation bug must not take the
	// process down.
	defer func() {
		if r := recover(); r != nil {
			s, err = "", fmt.Errorf("chat template: %v", r)
		}
	}()
	msgs := make([]any, len(messages))
	for i, m := range messages {
		msgs[i] = map[string]any{"role": m.Role, "content": m.Content}
	}
	out, err := c.tpl.ExecuteToString(exec.NewContext(map[string]any{
		"messages":              msgs,
		"bos_token":             c.bos,
		"eos_token":             c.eos,
		"add_generation_prompt": addGenerationPrompt,
		// Passed as None, not left undefined: Hugging Face does so, and
		// templates test "tools is not none".
		"tools":     nil,
		"documents": nil,
	}))
	if err != nil {
		return "", fmt.Errorf("render chat template: %w", err)
	}
	return out, nil
}

// errNoChatTemplate is returned for chat requests to a model whose files
// carry no chat template.
var errNoChatTemplate = errors.New("the tokenizer has no chat template")

// strftime formats t with the C directives chat templates use for dates.
func strftime(t time.Time, layout string) string {
	r := strings.NewReplacer("%d", "02", "%m", "01", "%Y", "2006", "%y", "06", "%B", "January", "%b", "Jan",
		"%H", "15", "%M", "04", "%S", "05", "%A", "Monday", "%a", "Mon", "%%", "%")
	return t.Format(r.Replace(layout))
}
