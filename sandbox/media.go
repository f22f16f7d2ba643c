package sandbox

import (
	"github.com/gotd/td/tg"
)

// Small media: uploads assembled from upload.saveFilePart, stored in
// memory, attached to messages as photos or documents and served back by
// upload.getFile.

type fileRec struct {
	id         int64
	accessHash int64
	data       []byte
	name       string
	mimeType   string
	photo      bool
	date       int
}

type uploadKey struct {
	owner  int64
	fileID int64
}

type upload struct {
	parts map[int][]byte
}

func (s *Server) mediaObjLocked(m *mediaRef) tg.MessageMediaClass {
	f := s.files[m.fileID]
	if f == nil {
		return &tg.MessageMediaEmpty{}
	}
	if f.photo {
		return &tg.MessageMediaPhoto{Photo: &tg.Photo{
			ID: f.id, AccessHash: f.accessHash, FileReference: []byte{1}, Date: f.date, DCID: s.opts.DC,
			Sizes: []tg.PhotoSizeClass{&tg.PhotoSize{Type: "x", W: 800, H: 600, Size: len(f.data)}},
		}}
	}
	return &tg.MessageMediaDocument{Document: &tg.Document{
		ID: f.id, AccessHash: f.accessHash, FileReference: []byte{1}, Date: f.date, DCID: s.opts.DC,
		MimeType: f.mimeType, Size: int64(len(f.data)),
		Attributes: []tg.DocumentAttributeClass{&tg.DocumentAttributeFilename{FileName: f.name}},
	}}
}
