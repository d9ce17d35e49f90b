package ingestmock

import (
	"bytes"
	"fmt"
	"io"
	"mime/multipart"
	"net/textproto"
)

// Form is the framing of a multipart/form-data upload with one file part,
// as the frontend sends to the upload route: Head, then the file's bytes,
// then Tail. Knowing both lets a client stream a file of any size with an
// exact Content-Length, as browsers do; tests and the load kit use it.
type Form struct {
	Head, Tail  []byte
	ContentType string // multipart/form-data with the boundary
}

// NewForm frames a file part named "file" with fileName and fileType,
// after the plain fields given as name, value pairs. It uses
// mime/multipart's own writer, so the bytes are what Go clients send.
func NewForm(fileName, fileType string, fields ...string) (Form, error) {
	if len(fields)%2 != 0 {
		return Form{}, fmt.Errorf("fields must be name, value pairs, got %d strings", len(fields))
	}
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for i := 0; i < len(fields); i += 2 {
		if err := w.WriteField(fields[i], fields[i+1]); err != nil {
			return Form{}, err
		}
	}
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="file"; filename=%q`, fileName))
	h.Set("Content-Type", fileType)
	if _, err := w.CreatePart(h); err != nil {
		return Form{}, err
	}
	head := bytes.Clone(buf.Bytes())
	buf.Reset()
	if err := w.Close(); err != nil {
		return Form{}, err
	}
	return Form{Head: head, Tail: bytes.Clone(buf.Bytes()), ContentType: w.FormDataContentType()}, nil
}

// Body is the whole form with file as the file's content.
func (f Form) Body(file io.Reader) io.Reader {
	return io.MultiReader(bytes.NewReader(f.Head), file, bytes.NewReader(f.Tail))
}

// Len is the form's length for a file of n bytes.
func (f Form) Len(n int64) int64 {
	return int64(len(f.Head)) + n + int64(len(f.Tail))
}
