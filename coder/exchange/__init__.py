"""Exchange with NVivo, ATLAS.ti, MAXQDA and QualCoder through REFI-QDA: projects (.qdpx) and
codebooks (.qdc) written (`writing`) and read (`reading`; the .qdc reader itself is a codebook
source, `coder.sources.codebook.qdc_format`), text positions converted (`offsets`)."""

from coder.exchange.reading import import_project
from coder.exchange.writing import ProjectExport, codebook_xml, export_project, write_codebook
from coder.sources.codebook.qdc_format import read_codebook

__all__ = ["ProjectExport", "codebook_xml", "export_project", "import_project", "read_codebook",
           "write_codebook"]
