package action

import (
	"strings"
	"unicode/utf8"

	"github.com/gotd/td/telegram/message/entity"
	"github.com/gotd/td/telegram/message/html"
	"github.com/gotd/td/tg"

	"github.com/tgrunner/tgrunner/core/event"
	pb "github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
)

// UTF16Len counts s in UTF-16 code units, the unit of Telegram's offsets
// and length limits.
func UTF16Len(s string) int {
	n := 0
	for _, r := range s {
		if r >= 0x10000 && r <= utf8.MaxRune {
			n += 2
		} else {
			n++
		}
	}
	return n
}

// styled is a message text ready to send.
type styled struct {
	text     string
	entities []tg.MessageEntityClass
}

// styleText applies the parse mode to text. field names the text in error
// messages ("text", "caption"); limit is the longest allowed result in
// UTF-16 units.
func (x *Executor) styleText(text string, mode pb.ParseMode, ents []*pb.TextEntity, field string, limit int) (styled, error) {
	if !utf8.ValidString(text) {
		return styled{}, invalidf("%s: not valid UTF-8", field)
	}
	var out styled
	switch mode {
	case pb.ParseMode_PARSE_MODE_NONE:
		tl, err := x.explicitEntities(text, ents, field)
		if err != nil {
			return styled{}, err
		}
		out = styled{text: text, entities: tl}
	case pb.ParseMode_PARSE_MODE_HTML:
		if len(ents) > 0 {
			return styled{}, invalidf("entities: only allowed with parse_mode NONE")
		}
		var b entity.Builder
		if err := html.HTML(strings.NewReader(text), &b, html.Options{UserResolver: x.inputUserByID}); err != nil {
			return styled{}, invalidf("%s: HTML: %v", field, err)
		}
		t, e := b.Complete()
		out = styled{text: t, entities: e}
	case pb.ParseMode_PARSE_MODE_MARKDOWN:
		if len(ents) > 0 {
			return styled{}, invalidf("entities: only allowed with parse_mode NONE")
		}
		t, e := ParseMarkdown(text)
		tl := make([]tg.MessageEntityClass, 0, len(e))
		for _, ent := range e {
			conv, err := x.entityToTL(ent)
			if err != nil {
				return styled{}, invalidf("%s: %v", field, err)
			}
			tl = append(tl, conv)
		}
		out = styled{text: t, entities: tl}
	default:
		return styled{}, invalidf("parse_mode: unknown value %d", mode)
	}
	if n := UTF16Len(out.text); n > limit {
		return styled{}, invalidf("%s: %d UTF-16 units after styling, over Telegram's limit of %d", field, n, limit)
	}
	if len(out.entities) == 0 {
		out.entities = nil
	}
	return out, nil
}

// explicitEntities checks caller-given entities against the text and
// converts them.
func (x *Executor) explicitEntities(text string, ents []*pb.TextEntity, field string) ([]tg.MessageEntityClass, error) {
	if len(ents) == 0 {
		return nil, nil
	}
	size := UTF16Len(text)
	out := make([]tg.MessageEntityClass, 0, len(ents))
	for i, e := range ents {
		if e == nil {
			return nil, invalidf("entities[%d]: empty", i)
		}
		if e.Offset < 0 || e.Length <= 0 || int(e.Offset)+int(e.Length) > size {
			return nil, invalidf("entities[%d]: range offset %d length %d is outside the %s (%d UTF-16 units)", i, e.Offset, e.Length, field, size)
		}
		conv, err := x.entityToTL(e)
		if err != nil {
			return nil, invalidf("entities[%d]: %v", i, err)
		}
		out = append(out, conv)
	}
	entity.SortEntities(out)
	return out, nil
}

// entityToTL converts one entity for sending. Mentions by id need the
// user's access hash (inputMessageEntityMentionName).
func (x *Executor) entityToTL(e *pb.TextEntity) (tg.MessageEntityClass, error) {
	switch e.Type {
	case pb.EntityType_ENTITY_TYPE_MENTION_NAME:
		u, err := x.inputUserByID(e.UserId)
		if err != nil {
			return nil, err
		}
		return &tg.InputMessageEntityMentionName{Offset: int(e.Offset), Length: int(e.Length), UserID: u}, nil
	case pb.EntityType_ENTITY_TYPE_UNSPECIFIED, pb.EntityType_ENTITY_TYPE_OTHER:
		return nil, invalidf("entity type %v cannot be sent", e.Type)
	case pb.EntityType_ENTITY_TYPE_TEXT_URL:
		if e.Url == "" {
			return nil, invalidf("a TEXT_URL entity needs a url")
		}
	}
	tl := event.ToTL([]*pb.TextEntity{e})
	if len(tl) != 1 {
		return nil, invalidf("entity type %v cannot be sent", e.Type)
	}
	return tl[0], nil
}

func (x *Executor) inputUserByID(id int64) (tg.InputUserClass, error) {
	return x.peers.InputUser(id, x.self())
}
