package sim

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// chunker builds SSE chunks by appending to a buffer: the fixed JSON
// around each token is rendered once, so streaming costs no allocation per
// token.
type chunker struct {
	chat   bool
	head   []byte // `data: {"id":...,"choices":[{"index":0,`
	usageH []byte
}

func newChunker(chat bool, id, model string, created int64) *chunker {
	object := "text_completion"
	if chat {
		object = "chat.completion.chunk"
	}
	head := []byte(`data: {"id":`)
	head = appendJSONString(head, id)
	head = append(head, `,"object":"`+object+`","created":`...)
	head = strconv.AppendInt(head, created, 10)
	head = append(head, `,"model":`...)
	head = appendJSONString(head, model)
	usageH := append([]byte(nil), head...)
	head = append(head, `,"choices":[{"index":0,`...)
	return &chunker{chat: chat, head: head, usageH: append(usageH, `,"choices":[],"usage":`...)}
}

func (c *chunker) roleChunk(buf []byte) []byte {
	if !c.chat {
		return buf
	}
	buf = append(buf, c.head...)
	return append(buf, `"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}`+"\n\n"...)
}

func (c *chunker) tokenChunk(buf []byte, piece, finish string) []byte {
	buf = append(buf, c.head...)
	if c.chat {
		buf = append(buf, `"delta":{"content":`...)
		buf = appendJSONString(buf, piece)
		buf = append(buf, `},"logprobs":null,"finish_reason":`...)
	} else {
		buf = append(buf, `"text":`...)
		buf = appendJSONString(buf, piece)
		buf = append(buf, `,"logprobs":null,"finish_reason":`...)
	}
	if finish == "" {
		buf = append(buf, "null"...)
	} else {
		buf = appendJSONString(buf, finish)
	}
	return append(buf, "}]}\n\n"...)
}

func (c *chunker) usageChunk(buf []byte, u *usage) []byte {
	b, _ := json.Marshal(u)
	buf = append(buf, c.usageH...)
	buf = append(buf, b...)
	return append(buf, "}\n\n"...)
}

func (c *chunker) errorChunk(buf []byte, msg string) []byte {
	buf = append(buf, `data: {"error":{"message":`...)
	buf = appendJSONString(buf, msg)
	return append(buf, `,"type":"InternalServerError","param":null,"code":500}}`+"\n\n"...)
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string literal.
func appendJSONString(buf []byte, s string) []byte {
	buf = append(buf, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				buf = append(buf, '\\', c)
			case c == '\n':
				buf = append(buf, '\\', 'n')
			case c == '\r':
				buf = append(buf, '\\', 'r')
			case c == '\t':
				buf = append(buf, '\\', 't')
			case c < 0x20:
				buf = append(buf, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				buf = append(buf, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			buf = append(buf, `\ufffd`...)
		} else {
			buf = append(buf, s[i:i+size]...)
		}
		i += size
	}
	return append(buf, '"')
}
