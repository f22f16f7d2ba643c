package event

import (
	"github.com/gotd/td/tg"

	pb "github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
)

// TextEntities converts message text entities into the contract's form.
func TextEntities(in []tg.MessageEntityClass) []*pb.TextEntity {
	if len(in) == 0 {
		return nil
	}
	out := make([]*pb.TextEntity, 0, len(in))
	for _, ent := range in {
		t := &pb.TextEntity{Offset: int32(ent.GetOffset()), Length: int32(ent.GetLength())}
		switch ent := ent.(type) {
		case *tg.MessageEntityMention:
			t.Type = pb.EntityType_ENTITY_TYPE_MENTION
		case *tg.MessageEntityHashtag:
			t.Type = pb.EntityType_ENTITY_TYPE_HASHTAG
		case *tg.MessageEntityBotCommand:
			t.Type = pb.EntityType_ENTITY_TYPE_BOT_COMMAND
		case *tg.MessageEntityURL:
			t.Type = pb.EntityType_ENTITY_TYPE_URL
		case *tg.MessageEntityEmail:
			t.Type = pb.EntityType_ENTITY_TYPE_EMAIL
		case *tg.MessageEntityBold:
			t.Type = pb.EntityType_ENTITY_TYPE_BOLD
		case *tg.MessageEntityItalic:
			t.Type = pb.EntityType_ENTITY_TYPE_ITALIC
		case *tg.MessageEntityCode:
			t.Type = pb.EntityType_ENTITY_TYPE_CODE
		case *tg.MessageEntityPre:
			t.Type, t.Language = pb.EntityType_ENTITY_TYPE_PRE, ent.Language
		case *tg.MessageEntityTextURL:
			t.Type, t.Url = pb.EntityType_ENTITY_TYPE_TEXT_URL, ent.URL
		case *tg.MessageEntityMentionName:
			t.Type, t.UserId = pb.EntityType_ENTITY_TYPE_MENTION_NAME, ent.UserID
		case *tg.MessageEntityPhone:
			t.Type = pb.EntityType_ENTITY_TYPE_PHONE
		case *tg.MessageEntityCashtag:
			t.Type = pb.EntityType_ENTITY_TYPE_CASHTAG
		case *tg.MessageEntityUnderline:
			t.Type = pb.EntityType_ENTITY_TYPE_UNDERLINE
		case *tg.MessageEntityStrike:
			t.Type = pb.EntityType_ENTITY_TYPE_STRIKE
		case *tg.MessageEntityBlockquote:
			t.Type = pb.EntityType_ENTITY_TYPE_BLOCKQUOTE
		case *tg.MessageEntitySpoiler:
			t.Type = pb.EntityType_ENTITY_TYPE_SPOILER
		case *tg.MessageEntityCustomEmoji:
			t.Type, t.CustomEmojiId = pb.EntityType_ENTITY_TYPE_CUSTOM_EMOJI, ent.DocumentID
		default:
			t.Type = pb.EntityType_ENTITY_TYPE_OTHER
		}
		out = append(out, t)
	}
	return out
}

// ToTL converts contract entities into MTProto ones, for sending.
func ToTL(in []*pb.TextEntity) []tg.MessageEntityClass {
	if len(in) == 0 {
		return nil
	}
	out := make([]tg.MessageEntityClass, 0, len(in))
	for _, t := range in {
		o, l := int(t.Offset), int(t.Length)
		var ent tg.MessageEntityClass
		switch t.Type {
		case pb.EntityType_ENTITY_TYPE_MENTION:
			ent = &tg.MessageEntityMention{Offset: o, Length: l}
		case pb.EntityType_ENTITY_TYPE_HASHTAG:
			ent = &tg.MessageEntityHashtag{Offset: o, Length: l}
		case pb.EntityType_ENTITY_TYPE_BOT_COMMAND:
			ent = &tg.MessageEntityBotCommand{Offset: o, Length: l}
		case pb.EntityType_ENTITY_TYPE_URL:
			ent = &tg.MessageEntityURL{Offset: o, Length: l}
		case pb.EntityType_ENTITY_TYPE_EMAIL:
			ent = &tg.MessageEntityEmail{Offset: o, Length: l}
		case pb.EntityType_ENTITY_TYPE_BOLD:
			ent = &tg.MessageEntityBold{Offset: o, Length: l}
		case pb.EntityType_ENTITY_TYPE_ITALIC:
			ent = &tg.MessageEntityItalic{Offset: o, Length: l}
		case pb.EntityType_ENTITY_TYPE_CODE:
			ent = &tg.MessageEntityCode{Offset: o, Length: l}
		case pb.EntityType_ENTITY_TYPE_PRE:
			ent = &tg.MessageEntityPre{Offset: o, Length: l, Language: t.Language}
		case pb.EntityType_ENTITY_TYPE_TEXT_URL:
			ent = &tg.MessageEntityTextURL{Offset: o, Length: l, URL: t.Url}
		case pb.EntityType_ENTITY_TYPE_PHONE:
			ent = &tg.MessageEntityPhone{Offset: o, Length: l}
		case pb.EntityType_ENTITY_TYPE_CASHTAG:
			ent = &tg.MessageEntityCashtag{Offset: o, Length: l}
		case pb.EntityType_ENTITY_TYPE_UNDERLINE:
			ent = &tg.MessageEntityUnderline{Offset: o, Length: l}
		case pb.EntityType_ENTITY_TYPE_STRIKE:
			ent = &tg.MessageEntityStrike{Offset: o, Length: l}
		case pb.EntityType_ENTITY_TYPE_BLOCKQUOTE:
			ent = &tg.MessageEntityBlockquote{Offset: o, Length: l}
		case pb.EntityType_ENTITY_TYPE_SPOILER:
			ent = &tg.MessageEntitySpoiler{Offset: o, Length: l}
		case pb.EntityType_ENTITY_TYPE_CUSTOM_EMOJI:
			ent = &tg.MessageEntityCustomEmoji{Offset: o, Length: l, DocumentID: t.CustomEmojiId}
		default:
			continue
		}
		out = append(out, ent)
	}
	return out
}
