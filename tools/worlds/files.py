"""The files world: a user's notes as text files in folders; list, read, write, append, move, delete.

Paths are absolute (`/notes/todo.txt`). Failures: a missing file, writing over an existing file
without `overwrite`, moving onto an existing path.
"""

from __future__ import annotations

import numpy as np

from chord_env.tools.worlds.base import Intent, NotFound, World, WorldError, choose, say, world_tool
from chord_env.tools.worlds.phrases import spoken_list
from chord_env.types import ToolCall

_FILES = {
    "/notes/shopping.txt": "bread\n", "/notes/todo.txt": "call the plumber\n", "/notes/ideas.txt": "a garden bench\n",
    "/work/standup.txt": "shipped the login page\n", "/work/contacts.txt": "Lena: 555-0142\n",
    "/recipes/pancakes.txt": "flour, eggs, milk\n", "/recipes/soup.txt": "leeks, potatoes, stock\n",
    "/travel/packing.txt": "passport\n",
}
_ITEMS = ("eggs", "milk", "flour", "coffee", "apples", "rice", "batteries", "tape", "soap", "lemons")


class Files(World):
    name = "files"

    @classmethod
    def random_state(cls, rng: np.random.Generator) -> dict:
        return {"files": {p: _FILES[p] for p in choose(rng, sorted(_FILES), k=6)}}

    def _read(self, path: str) -> str:
        if path not in self.state["files"]:
            raise NotFound(f"no file at {path}")
        return self.state["files"][path]

    @world_tool
    def list_files(self, folder: str = "/") -> list[str]:
        """Paths of the files under a folder.

        Args:
            folder: The folder, e.g. /notes.
        """
        prefix = folder.rstrip("/") + "/"
        return sorted(p for p in self.state["files"] if p.startswith(prefix))

    @world_tool
    def read_file(self, path: str) -> str:
        """The text of a file.

        Args:
            path: The file's absolute path.
        """
        return self._read(path)

    @world_tool
    def write_file(self, path: str, content: str, overwrite: bool = False) -> dict:
        """Create a file (or replace one, with overwrite).

        Args:
            path: The file's absolute path.
            content: The full text.
            overwrite: Replace the file if it exists.
        """
        if not path.startswith("/"):
            raise WorldError(f"paths must be absolute, got {path!r}")
        if path in self.state["files"] and not overwrite:
            raise WorldError(f"{path} already exists; pass overwrite=true to replace it")
        self.state["files"][path] = content
        return {"path": path, "chars": len(content)}

    @world_tool
    def append_lines(self, path: str, lines: list[str]) -> dict:
        """Add lines at the end of a file.

        Args:
            path: The file's absolute path.
            lines: The lines to add, one string each.
        """
        text = self._read(path)
        self.state["files"][path] = text + "".join(f"{line}\n" for line in lines)
        return {"path": path, "lines": self.state["files"][path].count("\n")}

    @world_tool
    def move_file(self, source: str, destination: str) -> dict:
        """Move or rename a file.

        Args:
            source: The current path.
            destination: The new path.
        """
        text = self._read(source)
        if destination in self.state["files"]:
            raise WorldError(f"{destination} already exists")
        del self.state["files"][source]
        self.state["files"][destination] = text
        return {"moved": source, "to": destination}

    @world_tool
    def delete_file(self, path: str) -> dict:
        """Delete a file.

        Args:
            path: The file's absolute path.
        """
        self._read(path)
        del self.state["files"][path]
        return {"deleted": path}


def _name(path: str) -> str:
    return path.rsplit("/", 1)[1]


def append(rng: np.random.Generator, state: dict) -> Intent:
    path = choose(rng, sorted(state["files"]))
    items = choose(rng, _ITEMS, k=int(rng.integers(1, 4)))
    request, wording = say(rng, "files.append", (
        "Add {items} to {path}.", "Append {items} to my {name} file ({path}), one per line.",
        "Put {items} at the end of {path}, each on its own line.",
    ), items=spoken_list(rng, items), path=path, name=_name(path))
    return Intent(request, [[ToolCall("append_lines", {"path": path, "lines": items})]],
                  f"Added {', '.join(items)} to {path}.", [], {f"file:{path}"}, wording,
                  f"Add {spoken_list(rng, items)} to my notes.", "Which file should I add them to?", f"{path}, please.")


def read(rng: np.random.Generator, state: dict) -> Intent:
    path = choose(rng, sorted(state["files"]))
    request, wording = say(rng, "files.read", (
        "What's in {path}?", "Read me {path}.", "Open {path} and tell me what it says.",
    ), path=path)
    text = state["files"][path].strip()
    return Intent(request, [[ToolCall("read_file", {"path": path})]], f"{path} says: {text}", [text],
                  {f"file:{path}"}, wording)


def rename(rng: np.random.Generator, state: dict) -> Intent:
    path = choose(rng, sorted(state["files"]))
    folder = path.rsplit("/", 1)[0]
    new = f"{folder}/{choose(rng, ('old', 'archive', 'draft', 'v2'))}-{_name(path)}"
    request, wording = say(rng, "files.rename", (
        "Rename {path} to {new}.", "Move {path} over to {new}.", "Could you call {path} {new} from now on?",
    ), path=path, new=new)
    return Intent(request, [[ToolCall("move_file", {"source": path, "destination": new})]],
                  f"{path} is now {new}.", [new], {f"file:{path}", f"file:{new}"}, wording)


def tidy(rng: np.random.Generator, state: dict) -> Intent:
    folder = choose(rng, sorted({p.rsplit("/", 1)[0] for p in state["files"]}))
    paths = sorted(p for p in state["files"] if p.startswith(folder + "/"))
    request, wording = say(rng, "files.summary", (
        "Make {folder}/index.txt listing the files in {folder}, one path per line.",
        "Create an index of {folder}: write every file path in it, one per line, to {folder}/index.txt.",
    ), folder=folder)
    steps = [[ToolCall("list_files", {"folder": folder})],
             [ToolCall("write_file", {"path": f"{folder}/index.txt", "content": "".join(p + "\n" for p in paths)})]]
    return Intent(request, steps, f"Wrote {folder}/index.txt with {len(paths)} entries.", [f"{folder}/index.txt"],
                  {f"folder:{folder}"} | {f"file:{p}" for p in paths}, wording)


def remove(rng: np.random.Generator, state: dict) -> Intent:
    path = choose(rng, sorted(state["files"]))
    request, wording = say(rng, "files.delete", (
        "Delete {path}.", "I don't need {path} any more, remove it.", "Please get rid of {path}.",
    ), path=path)
    return Intent(request, [[ToolCall("delete_file", {"path": path})]], f"Deleted {path}.", [path],
                  {f"file:{path}", f"folder:{path.rsplit('/', 1)[0]}"}, wording)


Files.intents = (append, read, rename, tidy, remove)
Files.off_topic = (
    ("Email my todo list to my sister.", "I can read and edit your files, but I have no way to send email."),
    ("Print my packing list.", "There's no printer among my tools; I can only list, read, write, move and delete your files."),
)
