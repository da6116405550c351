// Package pages draws the pages of stored originals as PNG images for the
// reviewer console, and keeps them in a disk cache.
//
// A page is rendered by MuPDF (go-fitz), the engine the extract stage
// reads text with, so what a reviewer sees is what the pipeline read.
// PDFs (an encrypted one with its password, decrypted in memory by
// pdfcpu) and images (PNG, JPEG, every frame of a TIFF) are drawn; any
// other format, or a file MuPDF cannot open, is a pipeline.Permanent
// error, which the console shows as "no preview" rather than retrying.
//
// Hostile files. MuPDF reports damage by longjmp; go-fitz guards opening
// and drawing but counts pages bare, and a negative page-tree /Count
// aborts the whole process there, so such files are refused before
// MuPDF sees them (the guard of stages/extract/mupdf). An image's size is
// read from its header before MuPDF decodes it, so a decompression bomb
// costs nothing, and a page is never drawn over MaxPixels: an absurdly
// tall page is drawn narrower instead.
//
// A page without colour (most are black on white) is written as an 8-bit
// grey PNG, a third of the size of RGB and quicker to compress; a page
// with colour as RGB.
//
// Cache. Images are kept under a folder, one file per (blob, page,
// width), evicted least recently used once the folder is over its byte
// budget. The folder is the whole state: at start the index is rebuilt
// from it (use order from the files' modification times, which a hit
// refreshes), so a restart keeps the cache warm. Blobs are content
// addressed and never change, so a cached image never goes stale.
// Concurrent requests for one image render it once (singleflight), and
// renders run at most one per CPU, so a page of thumbnails opened at once
// cannot starve the pipeline of CPU.
//
// A cached image is served without the password that decrypted its
// original: whoever may see the document may see its pages, and that is
// the caller's check, made before PNG is called.
package pages
