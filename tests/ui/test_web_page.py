"""The demo page in a real browser: draw a digit, upload a photo, price a house, generate, see errors."""

from __future__ import annotations

from training.data import load_image_folder

from .conftest import SCREENSHOTS


def _draw(page, strokes: list[list[tuple[float, float]]]) -> None:
    """Mouse strokes in canvas fractions (0-1), like a person drawing."""
    box = page.locator("#digit-canvas").bounding_box()
    for stroke in strokes:
        x, y = stroke[0]
        page.mouse.move(box["x"] + x * box["width"], box["y"] + y * box["height"])
        page.mouse.down()
        for x, y in stroke[1:]:
            page.mouse.move(box["x"] + x * box["width"], box["y"] + y * box["height"], steps=8)
        page.mouse.up()


def test_models_are_listed_with_versions(page):
    rows = page.locator("#models tbody tr")
    rows.first.wait_for()
    text = page.locator("#models").inner_text()
    assert "mnist-cnn" in text and "house-price-gbm" in text and "test_accuracy" in text


def test_draw_a_seven_and_classify(page):
    _draw(page, [[(0.25, 0.2), (0.75, 0.2), (0.45, 0.85)]])  # a 7: top bar, then the diagonal
    page.click("#digit-classify")
    answer = page.locator("#digit-answer")
    answer.filter(has_text="digit").wait_for()
    assert answer.inner_text().startswith("digit 7")
    assert page.locator("#digit-bars .bar").count() == 10
    page.screenshot(path=str(SCREENSHOTS / "digits.png"), full_page=True)


def test_upload_a_photo(page):
    path = next(p for p, label in load_image_folder("val").samples if label == 1)  # a bee
    page.set_input_files("#image-file", path)
    page.locator("#image-answer li").first.wait_for()
    items = page.locator("#image-answer li").all_inner_texts()
    assert len(items) == 2 and {item.split(":")[0] for item in items} == {"ants", "bees"}
    page.screenshot(path=str(SCREENSHOTS / "images.png"), full_page=True)


def test_price_a_house(page):
    page.click("#house-form button[type=submit]")
    answer = page.locator("#house-answer")
    answer.filter(has_text="$").wait_for()
    assert "house-price-gbm" in answer.inner_text()
    page.screenshot(path=str(SCREENSHOTS / "house.png"), full_page=True)


def test_api_errors_are_readable(page):
    page.fill("#house-form input[name=Latitude]", "55")
    page.click("#house-form button[type=submit]")
    error = page.locator("#house-panel [data-error]")
    error.filter(has_text="Error").wait_for()
    assert "Latitude" in error.inner_text() and "42.5" in error.inner_text()
    page.screenshot(path=str(SCREENSHOTS / "error.png"), full_page=True)


def test_generate_a_diffusion_grid(page):
    page.select_option("#generate-form select[name=model]", "diffusion")
    page.fill("#generate-form input[name=n]", "4")
    page.fill("#generate-form input[name=seed]", "7")
    page.fill("#generate-form input[name=digit]", "3")
    page.fill("#generate-form input[name=steps]", "5")
    page.click("#generate-form button[type=submit]")
    image = page.locator("#generate-image")
    image.wait_for(state="visible")
    assert page.evaluate("document.getElementById('generate-image').naturalWidth") > 0
    assert "seed 7" in page.locator("#generate-answer").inner_text()
    page.screenshot(path=str(SCREENSHOTS / "generate.png"), full_page=True)
