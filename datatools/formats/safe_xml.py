"""Safe parsing of untrusted XML annotation files with lxml: the one way every XML format (VOC now, CVAT next) turns
bytes into an element tree.

Use :func:`parse_document` on a whole file's bytes. It never resolves entities, never touches the network and never
loads a DTD; a document that declares a DOCTYPE or entities is refused outright (a finding, never an exception), so
billion-laughs and external-entity files can neither expand nor reach anything.
"""
from __future__ import annotations

from datatools.core.model import Finding
from datatools.formats.common import err

_parser = None


def xml_parser():
    """The shared lxml parser (built on first use, so importing a format module does not import lxml)."""
    global _parser
    if _parser is None:
        from lxml import etree

        # collect_ids=False: no ID table is built (nothing here looks elements up by id); about 4% of a parse.
        _parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                                  huge_tree=False, remove_comments=True, remove_pis=True, collect_ids=False)
    return _parser


def parse_document(data: bytes, *, path: str, image_id: str, root_tag: str):
    """The root element of a document whose root is ``<root_tag>``, or ``(None, the finding that says why the file
    is refused)``: an empty file, a DTD or entity declaration, XML that is not well-formed, another root element.
    Every refusal drops the image (``image_dropped``)."""
    from lxml import etree

    if not data or data.isspace():
        return None, err("empty-file", path, "", "the file is empty", image_id=image_id, image_dropped=True)
    # Refused before lxml sees it: a DOCTYPE in the prolog (the bytes before the root element's first tag).
    opening = data.find(b"<" + root_tag.encode())
    head = data[:data.find(b">", opening) + 1] if opening >= 0 else data
    if b"<!DOCTYPE" in head or b"<!ENTITY" in head:
        return None, _dtd_finding(path, image_id, "the file declares a DTD or entities; they are never expanded, "
                                                  "so the file is refused")
    try:
        root = etree.fromstring(data, xml_parser())
    except etree.XMLSyntaxError as e:
        return None, err("xml-parse", path, "", f"not well-formed XML: {e}", image_id=image_id, image_dropped=True)
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        return None, _dtd_finding(path, image_id,
                                  "the file declares a DTD; entities and DTDs are never expanded, so it is refused")
    if root.tag != root_tag:
        return None, err("xml-root", path, root.tag if isinstance(root.tag, str) else "",
                         f"expected an <{root_tag}> root element, found <{root.tag}>", image_id=image_id,
                         image_dropped=True)
    return root, None


def _dtd_finding(path: str, image_id: str, message: str) -> Finding:
    return err("xml-dtd", path, "DOCTYPE", message, image_id=image_id, image_dropped=True)
