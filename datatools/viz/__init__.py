"""Looking at data: boxes drawn on images, contact sheets, ground truth beside predictions.

From a notebook: ``from datatools.viz import draw_boxes; draw_boxes(img, boxes, labels)``. For whole datasets use
:func:`visualize` (what ``datatools visualize`` runs). :func:`class_colour` gives every class the same colour in every
dataset and command.
"""
from datatools.viz.draw import DrawItem, class_colour, draw_boxes, draw_items, line_width_for, text_colour_on
from datatools.viz.plan import select_images
from datatools.viz.render import VizResult, visualize
from datatools.viz.sheet import SheetLayout, contact_sheet, parse_grid

__all__ = ["DrawItem", "SheetLayout", "VizResult", "class_colour", "contact_sheet", "draw_boxes", "draw_items",
           "line_width_for", "parse_grid", "select_images", "text_colour_on", "visualize"]
