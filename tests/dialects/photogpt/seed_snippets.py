"""The code snippets of seed 001 (PhotoGPT images), copied verbatim: the tests run exactly this
text against a live server, after substituting only the placeholders a reader would fill in
(``<MODEL_ID>``, ``<IMAGE_ID>``) and, for the list, the ``imageType`` filter; ``BASE_URL``,
``headers``, ``requests`` and the file (``example/image.jpg``, or the browser's file input)
come from a small harness around them.
"""

from __future__ import annotations

PY_UPLOAD = """\
import json

model_id = "<MODEL_ID>"

payload = {
    "modelID": model_id,
    "type": "modelInput",
}

with open("example/image.jpg", "rb") as image_file:
    files = {
        "file": image_file,
        "data": (None, json.dumps(payload), "application/json"),
    }
    response = requests.post(f"{BASE_URL}/images/upload", headers=headers, files=files)

response.raise_for_status()
image = response.json()["result"]
"""

PY_LIST = """\
model_id = "<MODEL_ID>"

response = requests.get(
    f"{BASE_URL}/models/{model_id}/images",
    headers=headers,
    params={"imageType": "all", "pageNum": 1, "pageSize": 20},
)
response.raise_for_status()

images = response.json()["result"]
"""

PY_GET = """\
image_id = "<IMAGE_ID>"

response = requests.get(f"{BASE_URL}/images/{image_id}", headers=headers)
response.raise_for_status()

image = response.json()["result"]
"""

PY_DELETE = """\
image_id = "<IMAGE_ID>"

response = requests.delete(f"{BASE_URL}/images/{image_id}", headers=headers)
response.raise_for_status()
"""

JS_UPLOAD = """\
const modelId = '<MODEL_ID>'
const file = document.querySelector('input[type="file"]').files?.[0]

if (!file) {
  throw new Error('Select an image file before uploading.')
}

const payload = {
  modelID: modelId,
  type: 'modelInput',
}

const formData = new FormData()
formData.append('file', file)
formData.append('data', JSON.stringify(payload))

const response = await fetch(`${BASE_URL}/images/upload`, {
  method: 'POST',
  headers,
  body: formData,
})

if (!response.ok) {
  throw new Error(await response.text())
}

const body = await response.json()
const image = body.result
"""

JS_LIST = """\
const modelId = '<MODEL_ID>'
const params = new URLSearchParams({
  imageType: 'all',
  pageNum: '1',
  pageSize: '20',
})

const response = await fetch(`${BASE_URL}/models/${modelId}/images?${params}`, {
  headers,
})

if (!response.ok) {
  throw new Error(await response.text())
}

const body = await response.json()
const images = body.result
"""

JS_GET = """\
const imageId = '<IMAGE_ID>'

const response = await fetch(`${BASE_URL}/images/${imageId}`, {
  headers,
})

if (!response.ok) {
  throw new Error(await response.text())
}

const body = await response.json()
const image = body.result
"""

JS_DELETE = """\
const imageId = '<IMAGE_ID>'

const response = await fetch(`${BASE_URL}/images/${imageId}`, {
  method: 'DELETE',
  headers,
})

if (!response.ok) {
  throw new Error(await response.text())
}
"""
