"""Safe parsing of untrusted XML annotation files with lxml: the one way every XML format (VOC, CVAT) turns bytes
into an element tree.

Use :func:`parse_document` on a whole file's bytes, or :func:`stream_document` to meet a large document's parts
one at a time. It never resolves entities, never touches the network, the disk
or a DTD. Three walls, each enough on its own for what it guards:

* a document with a DOCTYPE anywhere in it is refused before lxml sees it. The text is searched in the encoding the
  parser would read it in (a BOM, UTF-16/32 without one, EBCDIC, or the declared ``encoding=``), so a comment, a
  processing instruction or UTF-16 text before the DOCTYPE does not hide it;
* the parser's only resolver answers every URL (external subset, external parameter entity, XInclude) with an empty
  string, so libxml2 opens nothing: it opened a ``SYSTEM`` subset even with ``load_dtd=False`` and
  ``no_network=True``, and one pointing at a FIFO hung the reader forever;
* a DOCTYPE that still reached the tree is refused after parsing.

Refusals are findings (never exceptions) whose text is the same whatever the DOCTYPE points at, so an error message
never tells whether some file exists.
"""
from __future__ import annotations

import codecs
import re
from typing import Sequence

from datatools.core.model import Finding
from datatools.formats.common import err, warn

_parser = None

# Byte-order marks and the zero-byte patterns of a "<?" or "<" without one (XML 1.0 appendix F), most specific first.
_SIGNATURES = (
    (codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"),
    (b"<\x00\x00\x00", "utf-32-le"), (b"\x00\x00\x00<", "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"),
    (b"<\x00", "utf-16-le"), (b"\x00<", "utf-16-be"), (b"\x4c\x6f\xa7\x94", "cp037"),
)
_DECLARED = re.compile(rb"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._:-]+)["']""")
_UTF8 = {"utf-8", "ascii", "iso8859-1", "cp1252"}  # ASCII-compatible: a byte search is exact


# What XML 1.0 cannot hold even as a character reference: most C0 controls and two non-characters
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def names_not_xml(names, records, path: str) -> list[Finding]:
    """``name-not-kept`` warnings for what ``escape`` writes with U+FFFD in place of characters XML 1.0 cannot hold
    (a ``\x01`` from a JSON source): one per class name, one for the file names and attributes of ``records``. The
    file stays well-formed; those texts are not the source's."""
    out = [warn("name-not-kept", path, "classes", f"class {n!r} holds characters XML cannot hold: written with "
                "U+FFFD in their place") for n in names if _NOT_XML.search(n)]
    other = sorted({t for r in records for t in (r.file_name or "", *(x for a in r.annotations
                                                                     for kv in a.attributes for x in kv))
                    if _NOT_XML.search(t)})
    if other:
        out.append(warn("name-not-kept", path, "attributes", f"{len(other)} file name(s) or attribute(s) hold "
                        f"characters XML cannot hold (e.g. {other[0]!r}): written with U+FFFD in their place"))
    return out


def escape(text: str, *, quote: bool = False) -> str:
    """XML text escaping (``&``, ``<``, ``>``; ``"`` too with ``quote``, for an attribute value), as
    ``xml.sax.saxutils.escape``, whose import pulls in ``urllib.request`` and costs every command about 40 ms of
    start-up. Every XML writer (VOC, CVAT) escapes through here. A parser turns a carriage return into a newline, and
    in an attribute a tab or a newline into a space: those are written as character references, so a class name
    ``a<TAB>b`` reads back as itself, not as ``a b``."""
    out = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")
    out = _NOT_XML.sub("\ufffd", out)  # a control character: the file would be no XML at all (names_not_xml)
    if quote:
        out = out.replace('"', "&quot;").replace("\t", "&#9;").replace("\n", "&#10;")
    return out


def _parser_options() -> dict:
    # collect_ids=False: no ID table is built (nothing here looks elements up by id); about 4% of a parse.
    # remove_blank_text drops the whitespace between elements (the indentation of a pretty-printed file), which
    # nothing reads: a fifth of the parse (VOC XML: 14.5 us a file against 17.9 us). libxml2 keeps the text of a
    # leaf even when it is all blanks, so ``<name> </name>`` still reads as " " (tests/test_voc_bad_input.py).
    return dict(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                attribute_defaults=False, huge_tree=False, remove_comments=True, remove_pis=True, collect_ids=False,
                remove_blank_text=True)


def _resolving_nothing(parser):
    """``parser`` with the one resolver: every external reference is an empty document, so libxml2 never opens a
    file or a URL."""
    from lxml import etree

    class _ResolveNothing(etree.Resolver):
        def resolve(self, url, pubid, context):
            return self.resolve_string("", context)

    parser.resolvers.add(_ResolveNothing())
    return parser


def xml_parser():
    """The shared lxml parser (built on first use, so importing a format module does not import lxml)."""
    global _parser
    if _parser is None:
        from lxml import etree

        _parser = _resolving_nothing(etree.XMLParser(**_parser_options()))
    return _parser


def pull_parser(tags: Sequence[str], encoding: str | None = None):
    """A parser fed in pieces (lxml's ``XMLPullParser``) with the shared parser's options and resolver, that reports
    the end of each element named in ``tags``."""
    from lxml import etree

    return _resolving_nothing(etree.XMLPullParser(events=("end",), tag=tuple(tags), encoding=encoding,
                                                  **_parser_options()))


def document_encoding(data: bytes) -> str:
    """The encoding a parser reads ``data`` in: its BOM or zero-byte signature, else the declared ``encoding=``,
    else UTF-8 (a Python codec name; the declared name when Python does not know it)."""
    for signature, name in _SIGNATURES:
        if data.startswith(signature):
            return name
    m = _DECLARED.match(data[:512])
    if m:
        declared = m.group(1).decode("ascii")
        try:
            return codecs.lookup(declared).name
        except LookupError:
            return declared
    return "utf-8"


def declares_dtd(data: bytes) -> bool | None:
    """Whether ``data`` holds ``<!DOCTYPE`` or ``<!ENTITY`` anywhere, read in its own encoding; None when the
    encoding is one Python cannot decode (the caller refuses such a file rather than guess)."""
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        return True
    encoding = document_encoding(data)
    if encoding in _UTF8:
        return False
    try:
        text = data.decode(encoding, errors="replace")
    except LookupError:
        return None
    return "<!DOCTYPE" in text or "<!ENTITY" in text


def _refused_before_parsing(data: bytes, path: str, image_id: str) -> Finding | None:
    """Why ``data`` is refused before a parser sees it: empty, an encoding that cannot be checked, or a DTD or entity
    declaration anywhere in it."""
    if not data or data.isspace():
        return err("empty-file", path, "", "the file is empty", image_id=image_id, image_dropped=True)
    dtd = declares_dtd(data)
    if dtd is None:
        return err("xml-parse", path, "", f"unknown encoding {document_encoding(data)!r}", image_id=image_id,
                   image_dropped=True)
    if dtd:
        return _dtd_finding(path, image_id, "the file declares a DTD or entities; they are never expanded, so the "
                                            "file is refused")
    return None


def _refused_after_parsing(root, path: str, image_id: str, root_tag: str) -> Finding | None:
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        return _dtd_finding(path, image_id,
                            "the file declares a DTD; entities and DTDs are never expanded, so it is refused")
    if root.tag != root_tag:
        return err("xml-root", path, root.tag if isinstance(root.tag, str) else "",
                   f"expected an <{root_tag}> root element, found <{root.tag}>", image_id=image_id, image_dropped=True)
    return None


def _not_well_formed(e, path: str, image_id: str) -> Finding:
    # e.msg: libxml2's words with their line and column (str(e) adds "(<string>, line N)" again)
    return err("xml-parse", path, "", f"not well-formed XML: {e.msg or e}", image_id=image_id, image_dropped=True)


def parse_document(data: bytes, *, path: str, image_id: str, root_tag: str):
    """The root element of a document whose root is ``<root_tag>``, or ``(None, the finding that says why the file
    is refused)``: an empty file, a DTD or entity declaration anywhere in it, an encoding that cannot be checked, XML
    that is not well-formed, another root element. Every refusal drops the image (``image_dropped``)."""
    from lxml import etree

    refused = _refused_before_parsing(data, path, image_id)
    if refused is not None:
        return None, refused
    try:
        root = etree.fromstring(data, xml_parser())
    except etree.XMLSyntaxError as e:
        return None, _not_well_formed(e, path, image_id)
    refused = _refused_after_parsing(root, path, image_id, root_tag)
    return (None, refused) if refused is not None else (root, None)


def stream_document(data: bytes, *, path: str, root_tag: str, children: Sequence[str], handle) -> Finding | None:
    """Parse ``data`` as :func:`parse_document` does, calling ``handle(element)`` for each child of the root named in
    ``children`` as soon as it is whole, and freeing it after: a large document (a CVAT export of 100k images) never
    holds its whole tree, only one child at a time. Returns the refusal finding, or None; after a refusal the
    caller drops what ``handle`` saw, as a refused file gives nothing."""
    from lxml import etree

    refused = _refused_before_parsing(data, path, "")
    if refused is not None:
        return refused
    encoding = None  # a fed parser does not take a UTF-32 byte-order mark (fromstring does): named instead
    for bom, name in ((codecs.BOM_UTF32_LE, "UTF-32LE"), (codecs.BOM_UTF32_BE, "UTF-32BE")):
        if data.startswith(bom):
            data, encoding = data[len(bom):], name
    parser = pull_parser(children, encoding)
    chunk = 1 << 20
    root = None
    try:
        for at in range(0, len(data), chunk):
            parser.feed(data[at:at + chunk])
            for _, el in parser.read_events():
                if root is None:
                    root = el.getroottree().getroot()
                    if root.tag != root_tag:
                        return _refused_after_parsing(root, path, "", root_tag)
                if el.getparent() is not root:
                    continue  # a nested element of that name is part of its parent's content
                handle(el)
                el.clear()
                while el.getprevious() is not None:
                    del root[0]
        root = parser.close()
    except etree.XMLSyntaxError as e:
        return _not_well_formed(e, path, "")
    return _refused_after_parsing(root, path, "", root_tag)


def _dtd_finding(path: str, image_id: str, message: str) -> Finding:
    return err("xml-dtd", path, "DOCTYPE", message, image_id=image_id, image_dropped=True)
