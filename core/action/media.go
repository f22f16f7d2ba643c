package action

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/gotd/td/telegram/uploader"
	"github.com/gotd/td/tg"
	"github.com/gotd/td/tgerr"

	pb "github.com/tgrunner/tgrunner/sdk/proto/pluginv1"
)

// downloadChunk is the upload.getFile limit: a multiple of 4 KiB that
// divides 1 MiB, as Telegram requires.
const downloadChunk = 512 << 10

// fileOf is what download needs to know about a message's file.
type fileOf struct {
	location tg.InputFileLocationClass
	size     int64
	mime     string
	name     string
}

// mediaFile finds the downloadable file of a message.
func mediaFile(m *tg.Message) (fileOf, error) {
	switch media := m.Media.(type) {
	case *tg.MessageMediaPhoto:
		photo, ok := media.Photo.(*tg.Photo)
		if !ok {
			return fileOf{}, notFoundf("message %d: its photo is no longer available", m.ID)
		}
		best, bestSize := "", -1
		for _, s := range photo.Sizes {
			var typ string
			size := -1
			switch s := s.(type) {
			case *tg.PhotoSize:
				typ, size = s.Type, s.Size
			case *tg.PhotoSizeProgressive:
				typ = s.Type
				for _, n := range s.Sizes {
					size = max(size, n)
				}
			case *tg.PhotoCachedSize:
				typ, size = s.Type, len(s.Bytes)
			}
			if typ != "" && size > bestSize {
				best, bestSize = typ, size
			}
		}
		if best == "" {
			return fileOf{}, notFoundf("message %d: its photo has no downloadable size", m.ID)
		}
		return fileOf{
			location: &tg.InputPhotoFileLocation{ID: photo.ID, AccessHash: photo.AccessHash, FileReference: photo.FileReference, ThumbSize: best},
			size:     int64(bestSize), mime: "image/jpeg", name: fmt.Sprintf("photo_%d.jpg", photo.ID),
		}, nil
	case *tg.MessageMediaDocument:
		doc, ok := media.Document.(*tg.Document)
		if !ok {
			return fileOf{}, notFoundf("message %d: its document is no longer available", m.ID)
		}
		f := fileOf{
			location: &tg.InputDocumentFileLocation{ID: doc.ID, AccessHash: doc.AccessHash, FileReference: doc.FileReference},
			size:     doc.Size, mime: doc.MimeType, name: fmt.Sprintf("document_%d", doc.ID),
		}
		for _, a := range doc.Attributes {
			if fn, ok := a.(*tg.DocumentAttributeFilename); ok && fn.FileName != "" {
				f.name = fn.FileName
			}
		}
		return f, nil
	case nil, *tg.MessageMediaEmpty:
		return fileOf{}, invalidf("message %d: has no media to download", m.ID)
	}
	return fileOf{}, invalidf("message %d: its media (%T) has no file to download", m.ID, m.Media)
}

func (x *Executor) download(ctx context.Context, m *pb.Download) (*pb.ActionResult, error) {
	if err := checkID(m.GetMessageId(), "message_id"); err != nil {
		return nil, err
	}
	if m.GetMaxBytes() < 0 {
		return nil, invalidf("max_bytes: %d is negative", m.GetMaxBytes())
	}
	limit := x.opts.MaxDownloadBytes
	if mb := m.GetMaxBytes(); mb > 0 && mb < limit {
		limit = mb
	}
	peer, err := x.inputPeer(ctx, m.GetChat(), "chat")
	if err != nil {
		return nil, err
	}
	// A file reference can expire between fetching the message and the
	// download; one fresh fetch of the message renews it.
	for attempt := 0; ; attempt++ {
		f, err := x.fileOfMessage(ctx, peer, m.GetChat(), int(m.GetMessageId()))
		if err != nil {
			return nil, err
		}
		if f.size > limit {
			return nil, invalidf("message %d: its file is %d bytes, over the limit of %d bytes", m.GetMessageId(), f.size, limit)
		}
		data, err := x.fetchFile(ctx, f.location, limit)
		if err != nil {
			if attempt == 0 && tgerr.Is(err, "FILE_REFERENCE_EXPIRED", "FILE_REFERENCE_INVALID") {
				continue
			}
			return nil, fmt.Errorf("download message %d in %s: %w", m.GetMessageId(), peerString(m.GetChat()), err)
		}
		return &pb.ActionResult{Result: &pb.ActionResult_File{File: &pb.File{Data: data, MimeType: f.mime, FileName: f.name}}}, nil
	}
}

func (x *Executor) fileOfMessage(ctx context.Context, peer tg.InputPeerClass, ref *pb.Peer, id int) (fileOf, error) {
	msgs, err := x.fetchInChat(ctx, peer, ref, []int{id}, true)
	if err != nil {
		return fileOf{}, err
	}
	msg, ok := msgs[0].(*tg.Message)
	if !ok {
		return fileOf{}, invalidf("message %d: a service message has no media", id)
	}
	return mediaFile(msg)
}

// fetchFile reads a whole file by chunks, refusing to read past limit.
func (x *Executor) fetchFile(ctx context.Context, loc tg.InputFileLocationClass, limit int64) ([]byte, error) {
	var data []byte
	for offset := int64(0); ; offset += downloadChunk {
		res, err := x.api.UploadGetFile(ctx, &tg.UploadGetFileRequest{Location: loc, Offset: offset, Limit: downloadChunk})
		if err != nil {
			return nil, err
		}
		part, ok := res.(*tg.UploadFile)
		if !ok {
			return nil, internalf("the file is served from a CDN, which the runner does not support (%T)", res)
		}
		if int64(len(data))+int64(len(part.Bytes)) > limit {
			return nil, invalidf("the file is larger than the limit of %d bytes", limit)
		}
		data = append(data, part.Bytes...)
		if len(part.Bytes) < downloadChunk {
			return data, nil
		}
	}
}

func (x *Executor) sendMedia(ctx context.Context, m *pb.SendMedia) (*pb.ActionResult, error) {
	data := m.GetData()
	if len(data) == 0 {
		return nil, invalidf("data: empty")
	}
	if int64(len(data)) > x.opts.MaxUploadBytes {
		return nil, invalidf("data: %d bytes, over the runner's upload limit of %d bytes", len(data), x.opts.MaxUploadBytes)
	}
	name := m.GetFileName()
	if name == "" {
		name = "file"
		if m.GetAsPhoto() {
			name = "photo.jpg"
		}
	}
	if !utf8.ValidString(name) || len(name) > 255 || strings.ContainsAny(name, "/\\\x00") {
		return nil, invalidf("file_name: %q is not a plain file name (at most 255 bytes, no slashes)", name)
	}
	mime := m.GetMimeType()
	if mime == "" {
		mime = http.DetectContentType(data)
		if i := strings.IndexByte(mime, ';'); i >= 0 {
			mime = mime[:i]
		}
	}
	if !strings.Contains(mime, "/") || strings.ContainsAny(mime, " \t\n") {
		return nil, invalidf("mime_type: %q is not a MIME type", mime)
	}
	caption, err := x.styleText(m.GetCaption(), pb.ParseMode_PARSE_MODE_NONE, nil, "caption", MaxCaptionUnits)
	if err != nil {
		return nil, err
	}
	if id := m.GetReplyToMessageId(); id != 0 {
		if err := checkID(id, "reply_to_message_id"); err != nil {
			return nil, err
		}
	}
	peer, err := x.inputPeer(ctx, m.GetChat(), "chat")
	if err != nil {
		return nil, err
	}
	up := uploader.NewUploader(x.api).WithIDGenerator(x.randomID)
	file, err := up.FromBytes(ctx, name, data)
	if err != nil {
		return nil, fmt.Errorf("upload %s: %w", name, err)
	}
	var media tg.InputMediaClass
	if m.GetAsPhoto() {
		media = &tg.InputMediaUploadedPhoto{File: file}
	} else {
		media = &tg.InputMediaUploadedDocument{File: file, MimeType: mime,
			Attributes: []tg.DocumentAttributeClass{&tg.DocumentAttributeFilename{FileName: name}}}
	}
	rid, err := x.pickRandomID(m.GetRandomId())
	if err != nil {
		return nil, err
	}
	req := &tg.MessagesSendMediaRequest{Peer: peer, Media: media, Message: caption.text, RandomID: rid}
	if id := m.GetReplyToMessageId(); id != 0 {
		req.ReplyTo = &tg.InputReplyToMessage{ReplyToMsgID: int(id)}
	}
	res, err := x.api.MessagesSendMedia(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("send %s to %s: %w", name, peerString(m.GetChat()), err)
	}
	return messageResult(x.sentOne(ctx, res, rid, x.fallbackMessage(peer, caption, int(m.GetReplyToMessageId()), false))), nil
}
