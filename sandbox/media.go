package sandbox

import (
	"github.com/gotd/td/bin"
	"github.com/gotd/td/tg"
	"github.com/gotd/td/tgerr"
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

var (
	errFilePartsInvalid  = tgerr.New(400, "FILE_PARTS_INVALID")
	errFileIDInvalid     = tgerr.New(400, "FILE_ID_INVALID")
	errFileTooBig        = tgerr.New(400, "FILE_PART_SIZE_INVALID")
	errMediaInvalid      = tgerr.New(400, "MEDIA_INVALID")
	errLocationInvalid   = tgerr.New(400, "LOCATION_INVALID")
	errFileRefExpired    = tgerr.New(400, "FILE_REFERENCE_EXPIRED")
	errLimitInvalid      = tgerr.New(400, "LIMIT_INVALID")
	errOffsetInvalid     = tgerr.New(400, "OFFSET_INVALID")
	maxSmallFile         = 10 << 20
	maxUploadPartsPerKey = 4000
)

// saveUploadLocked turns an uploaded InputFile into a stored file.
func (s *Server) saveUploadLocked(owner int64, in tg.InputFileClass, photo bool, name, mime string) (*fileRec, error) {
	f, ok := in.(*tg.InputFile)
	if !ok {
		return nil, errMediaInvalid
	}
	key := uploadKey{owner: owner, fileID: f.ID}
	up := s.uploads[key]
	if up == nil || f.Parts <= 0 {
		return nil, errFilePartsInvalid
	}
	var data []byte
	for i := 0; i < f.Parts; i++ {
		part, ok := up.parts[i]
		if !ok {
			return nil, errFilePartsInvalid
		}
		data = append(data, part...)
	}
	delete(s.uploads, key)
	s.nextFileID++
	if name == "" {
		name = f.Name
	}
	rec := &fileRec{id: s.nextFileID, accessHash: int64(s.hashSecret>>1) ^ s.nextFileID, data: data,
		name: name, mimeType: mime, photo: photo, date: now()}
	s.files[rec.id] = rec
	return rec, nil
}

func (s *Server) inputMediaLocked(owner int64, media tg.InputMediaClass) (*mediaRef, error) {
	switch m := media.(type) {
	case *tg.InputMediaUploadedPhoto:
		f, err := s.saveUploadLocked(owner, m.File, true, "", "image/jpeg")
		if err != nil {
			return nil, err
		}
		return &mediaRef{fileID: f.id, photo: true}, nil
	case *tg.InputMediaUploadedDocument:
		name := ""
		for _, a := range m.Attributes {
			if fn, ok := a.(*tg.DocumentAttributeFilename); ok {
				name = fn.FileName
			}
		}
		f, err := s.saveUploadLocked(owner, m.File, false, name, m.MimeType)
		if err != nil {
			return nil, err
		}
		return &mediaRef{fileID: f.id}, nil
	case *tg.InputMediaPhoto:
		p, ok := m.ID.(*tg.InputPhoto)
		if !ok || s.files[p.ID] == nil || s.files[p.ID].accessHash != p.AccessHash {
			return nil, errMediaInvalid
		}
		return &mediaRef{fileID: p.ID, photo: true}, nil
	case *tg.InputMediaDocument:
		d, ok := m.ID.(*tg.InputDocument)
		if !ok || s.files[d.ID] == nil || s.files[d.ID].accessHash != d.AccessHash {
			return nil, errMediaInvalid
		}
		return &mediaRef{fileID: d.ID}, nil
	}
	return nil, errMediaInvalid
}

func (s *Server) registerMedia() {
	on(s, tg.UploadSaveFilePartRequestTypeID, true, func(c *call, req *tg.UploadSaveFilePartRequest) (bin.Encoder, error) {
		if len(req.Bytes) > 512*1024 {
			return nil, errFileTooBig
		}
		if req.FilePart < 0 || req.FilePart >= maxUploadPartsPerKey {
			return nil, errFilePartsInvalid
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		key := uploadKey{owner: c.userID, fileID: req.FileID}
		up := s.uploads[key]
		if up == nil {
			up = &upload{parts: map[int][]byte{}}
			s.uploads[key] = up
		}
		size := 0
		for _, p := range up.parts {
			size += len(p)
		}
		if size+len(req.Bytes) > maxSmallFile {
			return nil, errFileTooBig
		}
		up.parts[req.FilePart] = append([]byte(nil), req.Bytes...)
		return &tg.BoolTrue{}, nil
	})
	on(s, tg.UploadGetFileRequestTypeID, true, func(c *call, req *tg.UploadGetFileRequest) (bin.Encoder, error) {
		var id, hash int64
		var ref []byte
		switch l := req.Location.(type) {
		case *tg.InputPhotoFileLocation:
			id, hash, ref = l.ID, l.AccessHash, l.FileReference
		case *tg.InputDocumentFileLocation:
			id, hash, ref = l.ID, l.AccessHash, l.FileReference
		default:
			return nil, errLocationInvalid
		}
		if req.Limit <= 0 || req.Limit > 1024*1024 {
			return nil, errLimitInvalid
		}
		if req.Offset < 0 {
			return nil, errOffsetInvalid
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		f := s.files[id]
		if f == nil || f.accessHash != hash {
			return nil, errLocationInvalid
		}
		if len(ref) == 0 {
			return nil, errFileRefExpired
		}
		var chunk []byte
		if req.Offset < int64(len(f.data)) {
			end := req.Offset + int64(req.Limit)
			if end > int64(len(f.data)) {
				end = int64(len(f.data))
			}
			chunk = append([]byte(nil), f.data[req.Offset:end]...)
		}
		var typ tg.StorageFileTypeClass = &tg.StorageFilePartial{}
		if f.photo {
			typ = &tg.StorageFileJpeg{}
		}
		return &tg.UploadFile{Type: typ, Mtime: f.date, Bytes: chunk}, nil
	})
	on(s, tg.MessagesSendMediaRequestTypeID, true, func(c *call, req *tg.MessagesSendMediaRequest) (bin.Encoder, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		peer, err := s.resolveInputPeerLocked(c.userID, req.Peer)
		if err != nil {
			return nil, err
		}
		media, err := s.inputMediaLocked(c.userID, req.Media)
		if err != nil {
			return nil, err
		}
		r, err := s.sendLocked(c.userID, c.sessionID, peer, outgoing{
			text: req.Message, entities: encodeEntities(req.Entities), replyTo: replyToID(req.ReplyTo),
			silent: req.Silent, randomID: req.RandomID, scheduleDate: req.ScheduleDate, media: media,
		}, true)
		if err != nil {
			return nil, err
		}
		return s.sendAnswerLocked(c.userID, r, req.RandomID), nil
	})
}
