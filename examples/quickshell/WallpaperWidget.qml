// The wallpaper progress, for a bar: "palette 50% running" and a bar filled to 50 %, the step's
// text under it; red with the error when a step failed; dimmed, with the hub's notice, while
// the hub is away. Put `WallpaperWidget { link: wallpaper }` in your own bar (a WallpaperLink
// with id wallpaper next to it), or use shell.qml as it is.
import QtQuick
import QtQuick.Layouts

ColumnLayout {
    id: widget

    required property var link
    readonly property var view: link.view

    visible: link.shown
    opacity: view.online ? 1.0 : 0.5
    spacing: 2

    RowLayout {
        spacing: 8

        Text {
            text: widget.view.label
            color: widget.view.failed ? "#ff5555" : "#f8f8f2"
            font.bold: widget.view.failed
        }

        Rectangle {
            Layout.preferredWidth: 120
            Layout.preferredHeight: 6
            radius: 3
            color: "#44475a"

            Rectangle {
                width: parent.width * widget.view.progress / 100
                height: parent.height
                radius: parent.radius
                color: widget.view.failed ? "#ff5555" : "#50fa7b"
            }
        }
    }

    Text {
        // The step's text, the error, or why the widget is offline.
        text: widget.view.notice !== "" ? widget.view.notice
            : (widget.view.failed ? widget.view.error : widget.view.text)
        visible: text !== ""
        color: widget.view.failed ? "#ff5555" : "#bfbfbf"
        font.pixelSize: 11
        elide: Text.ElideRight
        Layout.maximumWidth: 320
    }
}
