"""Where image files are: the extensions read, and the shared data directory."""
import os

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


def data_dir() -> str:
  """$DBSN_DATA_DIR, else the first existing ../shared/data near cwd or the package."""
  if os.environ.get("DBSN_DATA_DIR"):
    return os.environ["DBSN_DATA_DIR"]
  repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  for base in (os.getcwd(), repo):
    for cand in (os.path.join(base, "..", "shared", "data"), os.path.join(base, "shared", "data")):
      if os.path.isdir(cand):
        return os.path.normpath(cand)
  return os.path.normpath(os.path.join(os.getcwd(), "..", "shared", "data"))
