package sandbox

import "github.com/gotd/td/bin"

func (s *Server) registerHandlers() {
	s.handlers = map[uint32]handlerFunc{}
	s.registerAuth()
	s.registerPeers()
	s.registerUpdates()
	s.registerMessages()
	s.registerActions()
	s.registerChats()
	s.registerInvites()
	s.registerMedia()
}

var _ bin.Encoder = rawObject(nil)
