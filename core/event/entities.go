package event

import "github.com/gotd/td/tg"

// Entities are the users and chats an update refers to.
type Entities struct {
	SelfID   int64
	Users    map[int64]*tg.User
	Chats    map[int64]*tg.Chat
	Channels map[int64]*tg.Channel
	// Contacts reports whether a user is in the account's contact list
	// when the user object does not say (optional).
	Fallback Lookup
}

// Lookup finds entities that an update does not carry, typically from the
// runner's persistent peer store. Any method may return nil.
type Lookup interface {
	User(id int64) *tg.User
	Chat(id int64) *tg.Chat
	Channel(id int64) *tg.Channel
}

// NewEntities indexes the users and chats of an update batch.
func NewEntities(selfID int64, users []tg.UserClass, chats []tg.ChatClass, fallback Lookup) Entities {
	e := Entities{
		SelfID:   selfID,
		Users:    make(map[int64]*tg.User, len(users)),
		Chats:    map[int64]*tg.Chat{},
		Channels: map[int64]*tg.Channel{},
		Fallback: fallback,
	}
	for _, u := range users {
		if u, ok := u.(*tg.User); ok {
			e.Users[u.ID] = u
		}
	}
	for _, c := range chats {
		switch c := c.(type) {
		case *tg.Chat:
			e.Chats[c.ID] = c
		case *tg.Channel:
			e.Channels[c.ID] = c
		}
	}
	return e
}

func (e Entities) user(id int64) *tg.User {
	if u, ok := e.Users[id]; ok {
		return u
	}
	if e.Fallback != nil {
		return e.Fallback.User(id)
	}
	return nil
}

func (e Entities) chat(id int64) *tg.Chat {
	if c, ok := e.Chats[id]; ok {
		return c
	}
	if e.Fallback != nil {
		return e.Fallback.Chat(id)
	}
	return nil
}

func (e Entities) channel(id int64) *tg.Channel {
	if c, ok := e.Channels[id]; ok {
		return c
	}
	if e.Fallback != nil {
		return e.Fallback.Channel(id)
	}
	return nil
}

// UpdatesOf splits any updates container into its updates and entities.
// Short updates have no entities; the manager normally expands them before
// they reach the handler.
func UpdatesOf(u tg.UpdatesClass) (updates []tg.UpdateClass, users []tg.UserClass, chats []tg.ChatClass, date int) {
	switch u := u.(type) {
	case *tg.Updates:
		return u.Updates, u.Users, u.Chats, u.Date
	case *tg.UpdatesCombined:
		return u.Updates, u.Users, u.Chats, u.Date
	case *tg.UpdateShort:
		return []tg.UpdateClass{u.Update}, nil, nil, u.Date
	}
	return nil, nil, nil, 0
}
