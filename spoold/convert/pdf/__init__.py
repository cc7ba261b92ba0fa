"""PDF in: pdf->pdf sanitised (sanitise.py), and the text recovery that pdf->docx builds
on (text.py). Importing the package registers the pdf->pdf converter."""

from __future__ import annotations

from .sanitise import PdfToPdf, open_pdf, sanitise_pdf
from .text import pdf_to_html

__all__ = ["PdfToPdf", "open_pdf", "pdf_to_html", "sanitise_pdf"]
